// Sluice through the official `openai` npm package: what a team pointing
// its existing OpenAI code at Sluice would check first.

import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { useSluice } from './server.js';
import { postJSON } from './sse.js';

const T = { timeout: 30_000 };
const STREAM_ID = /^[0-9a-f]{32}$/;
const messages = [{ role: 'user', content: 'Tell me about streaming answers over server-sent events.' }];

/** An SDK client for sluice. No retries: a failure must show as it happened, not be papered over. */
const sdk = (sluice) => new OpenAI({ baseURL: sluice.url + '/v1', apiKey: 'unused', maxRetries: 0 });

/** Collects an SDK stream: every chunk, and the joined delta content. */
async function collect(stream) {
  const chunks = [];
  let text = '';
  for await (const chunk of stream) {
    chunks.push(chunk);
    text += chunk.choices[0]?.delta?.content ?? '';
  }
  return { chunks, text };
}

describe('openai SDK against a fast demo model', () => {
  const sluice = useSluice(['--demo-tps', '0', '--demo-ttft', '0s']);
  let client;
  before(() => (client = sdk(sluice)));

  test('models.list() includes demo', T, async () => {
    const ids = [];
    for await (const model of client.models.list()) {
      assert.equal(model.object, 'model');
      ids.push(model.id);
    }
    assert.ok(ids.includes('demo'), `models: ${JSON.stringify(ids)}`);
  });

  test('stream: true yields chunks of a markdown answer ending with finish_reason stop', T, async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'demo', stream: true, messages })
      .withResponse();
    assert.match(response.headers.get('sluice-stream-id') ?? '', STREAM_ID, 'Sluice-Stream-ID header');
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);

    const { chunks, text } = await collect(stream);
    assert.ok(chunks.length >= 5, `only ${chunks.length} chunks arrived`);
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.model, 'demo');
      assert.equal(c.id, chunks[0].id, 'every chunk of one answer has the same completion id');
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.ok(text.trim().length > 0, 'the answer is empty');
    assert.match(text, /\bdemo\b/i, `the answer does not say it comes from a demo model:\n${text}`);
    assert.match(text, /```[^\n]*\n[\s\S]*?\n```/, `the answer has no fenced code block:\n${text}`);

    const withChoices = chunks.filter((c) => c.choices.length > 0);
    const last = withChoices.at(-1);
    assert.equal(last.choices[0].finish_reason, 'stop');
    for (const c of withChoices.slice(0, -1)) {
      assert.equal(c.choices[0].finish_reason, null, 'finish_reason set before the last chunk');
    }
  });

  test('stream_options.include_usage ends with a usage chunk with empty choices', T, async () => {
    const stream = await client.chat.completions.create({
      model: 'demo',
      stream: true,
      stream_options: { include_usage: true },
      messages,
    });
    const { chunks, text } = await collect(stream);
    assert.ok(text.length > 0);
    const final = chunks.at(-1);
    assert.deepEqual(final.choices, [], 'the usage chunk has no choices');
    const u = final.usage;
    assert.ok(u, `no usage in the final chunk: ${JSON.stringify(final)}`);
    assert.ok(u.prompt_tokens > 0, `prompt_tokens ${u.prompt_tokens}`);
    assert.ok(u.completion_tokens > 0, `completion_tokens ${u.completion_tokens}`);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    for (const c of chunks.slice(0, -1)) {
      assert.ok(c.usage == null, `usage before the final chunk: ${JSON.stringify(c)}`);
    }
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
  });

  test('stream: false gives one chat.completion with the same text as the stream', T, async () => {
    const streamed = await collect(await client.chat.completions.create({ model: 'demo', stream: true, messages }));
    const { data: completion, response } = await client.chat.completions
      .create({ model: 'demo', messages })
      .withResponse();
    assert.match(response.headers.get('sluice-stream-id') ?? '', STREAM_ID, 'Sluice-Stream-ID header');
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'demo');
    assert.equal(completion.choices.length, 1);
    const [choice] = completion.choices;
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(choice.message.content, streamed.text);
  });

  test('stream: false reports usage with total = prompt + completion tokens', T, async () => {
    const completion = await client.chat.completions.create({ model: 'demo', messages });
    const u = completion.usage;
    assert.ok(u, `no usage: ${JSON.stringify(completion)}`);
    assert.ok(u.completion_tokens > 0);
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
  });

  test('a message containing "short" gets a one-line answer, "long" a long one', T, async () => {
    const short = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'Give me a short answer.' }],
    });
    const shortText = short.choices[0].message.content.trim();
    assert.ok(shortText.length > 0);
    assert.ok(!shortText.includes('\n'), `not one line:\n${shortText}`);

    const long = await collect(
      await client.chat.completions.create({
        model: 'demo',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'Give me a long answer.' }],
      }),
    );
    const usage = long.chunks.at(-1).usage;
    assert.ok(usage.completion_tokens >= 1000, `a long answer of ${usage.completion_tokens} tokens`);
    assert.ok(long.text.length > 20 * shortText.length, `a long answer of ${long.text.length} characters`);
    assert.equal(long.chunks.at(-2).choices[0].finish_reason, 'stop');
  });

  test('the stream named by Sluice-Stream-ID can be read again at /v1/streams/{id}', T, async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'demo', stream: true, messages })
      .withResponse();
    const { text } = await collect(stream);
    const id = response.headers.get('sluice-stream-id');
    assert.match(id ?? '', STREAM_ID);

    const res = await fetch(`${sluice.url}/v1/streams/${id}`);
    assert.equal(res.status, 200);
    const body = await res.text();
    let again = '';
    for (const line of body.split('\n')) {
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      again += JSON.parse(line.slice(6)).choices[0]?.delta?.content ?? '';
    }
    assert.equal(again, text);
    assert.ok(body.trimEnd().endsWith('data: [DONE]'), 'the replay does not end with [DONE]');
  });

  test('an unknown model throws a 404 NotFoundError with an OpenAI-style error', T, async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', stream: true, messages }),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
        assert.ok(err instanceof OpenAI.NotFoundError, `not a NotFoundError: ${err}`);
        assert.equal(err.status, 404);
        assert.equal(typeof err.error?.message, 'string');
        assert.match(err.error.message, /no-such-model/);
        assert.equal(err.param, 'model');
        assert.equal(typeof err.type, 'string');
        assert.equal(typeof err.code, 'string');
        return true;
      },
    );
  });

  test('an empty messages array throws a 400 BadRequestError naming messages', T, async () => {
    await assert.rejects(client.chat.completions.create({ model: 'demo', messages: [] }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `not a BadRequestError: ${err}`);
      assert.equal(err.status, 400);
      assert.equal(err.param, 'messages');
      assert.equal(typeof err.error?.message, 'string');
      return true;
    });
  });

  test('error bodies are exactly {"error":{"message","type","param","code"}}', T, async () => {
    const cases = [
      { body: { model: 'no-such-model', messages }, status: 404 },
      { body: { model: 'demo', messages: [] }, status: 400 },
      { body: '{"model": "demo", "messages": [', status: 400 },
    ];
    for (const { body, status } of cases) {
      const res = await postJSON(`${sluice.url}/v1/chat/completions`, body);
      const text = await res.text();
      assert.equal(res.status, status, text);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const json = JSON.parse(text);
      assert.deepEqual(Object.keys(json), ['error'], text);
      assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'type'], text);
      assert.equal(typeof json.error.message, 'string');
      assert.ok(json.error.message.length > 0);
    }
  });
});

describe('openai SDK against a paced demo model', () => {
  const sluice = useSluice(['--demo-tps', '100', '--demo-ttft', '0s']);
  let client;
  before(() => (client = sdk(sluice)));

  test('a cancelled generation makes the SDK throw, never end quietly', T, async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model: 'demo', stream: true, messages: [{ role: 'user', content: 'Give me a long answer.' }] })
      .withResponse();
    const id = response.headers.get('sluice-stream-id');
    assert.match(id ?? '', STREAM_ID);

    let text = '';
    let cancelled;
    await assert.rejects(
      (async () => {
        for await (const chunk of stream) {
          text += chunk.choices[0]?.delta?.content ?? '';
          if (!cancelled && text.length > 0) {
            cancelled = fetch(`${sluice.url}/v1/streams/${id}/cancel`, { method: 'POST' }).then(async (res) => ({
              status: res.status,
              body: await res.json(),
            }));
          }
        }
      })(),
      (err) => {
        assert.ok(err instanceof OpenAI.APIError, `not an APIError: ${err}`);
        assert.equal(err.code, 'cancelled', `error: ${JSON.stringify(err.error)}`);
        return true;
      },
    );
    const { status, body } = await cancelled;
    assert.equal(status, 200);
    assert.deepEqual(body, { id, object: 'stream', status: 'cancelled' });
  });
});
