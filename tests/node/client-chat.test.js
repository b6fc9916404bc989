// @sluice-dev/client (clients/js), installed here from the repository path
// as an application would install it, reading chats from the real sluice
// binary through a proxy that cuts connections at random points. What it
// hands over is compared with what an independent parser
// (eventsource-parser) reads from the server in one uninterrupted
// connection.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ConnectionError, SluiceClient, SluiceError } from '@sluice-dev/client';
import { repoRoot, startSluice, useSluice } from './server.js';
import { startCutProxy } from './cut-proxy.js';
import { openSSE } from './sse.js';

const T = { timeout: 60_000 };
/** Reconnect at once: these tests cut hundreds of connections. */
const fast = { initialDelay: 1, maxDelay: 20 };
const messages = (content) => [{ role: 'user', content }];

const sluice = useSluice(['--demo-tps', '400', '--demo-ttft', '0s']);

/** The stream id read whole from the server, in one connection: its events' ids and chunks, and [DONE]'s id. */
async function uninterrupted(url, id) {
  const r = await openSSE(`${url}/v1/streams/${id}`);
  const events = await r.readToEnd();
  const done = events.pop();
  assert.equal(done?.data, '[DONE]', `the uninterrupted read of ${id} ended with ${done?.data}`);
  return { ids: events.map((e) => e.id), chunks: events.map((e) => JSON.parse(e.data)), doneId: done.id };
}

test('chats read through a proxy that cuts every stream are the uninterrupted transcripts, by iterator and by callbacks', T, async () => {
  const proxy = await startCutProxy(sluice.url, { seed: 11 });
  try {
    const client = new SluiceClient({ baseURL: proxy.url, retry: fast });
    const runs = Array.from({ length: 16 }, async (_, i) => {
      const seen = [];
      const stream = client.chat({ model: 'demo', messages: messages(`chat ${i}, cut at random`) }, {
        onChunk: (chunk, s) => seen.push({ id: s.lastEventId, chunk }),
      });
      const iterated = [];
      if (i % 2 === 0) for await (const chunk of stream) iterated.push(chunk);
      const result = await stream.done;
      assert.equal(result.status, 'done', `chat ${i}: ${result.error?.message}`);
      const want = await uninterrupted(sluice.url, stream.id);
      assert.deepEqual(seen.map((s) => s.id), want.ids, `chat ${i}: event ids`);
      assert.deepEqual(seen.map((s) => s.chunk), want.chunks, `chat ${i}: chunks`);
      if (i % 2 === 0) assert.deepEqual(iterated, want.chunks, `chat ${i}: the iterator's chunks`);
      const text = want.chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
      assert.equal(result.text, text, `chat ${i}: text`);
      assert.equal(stream.lastEventId, want.doneId, `chat ${i}: lastEventId`);
    });
    await Promise.all(runs);
    assert.ok(proxy.cuts >= 16, `only ${proxy.cuts} cuts of ${proxy.streams} streams: resuming was not tested`);
  } finally {
    await proxy.close();
  }
});

test('a connection that stalls without closing is left after idleTimeout, and the answer goes on', T, async () => {
  const proxy = await startCutProxy(sluice.url, { seed: 5, maxBytes: 16384, stall: true });
  try {
    const reasons = [];
    const client = new SluiceClient({ baseURL: proxy.url, retry: { ...fast, idleTimeout: 150 } });
    const stream = client.chat({ model: 'demo', messages: messages('stalled') }, {
      onState: (state, info) => state === 'reconnecting' && reasons.push(info.reason),
    });
    const result = await stream.done;
    assert.equal(result.status, 'done', result.error?.message);
    const want = await uninterrupted(sluice.url, stream.id);
    assert.equal(result.text, want.chunks.map((c) => c.choices[0]?.delta?.content ?? '').join(''));
    assert.ok(proxy.cuts > 0, 'nothing stalled');
    assert.equal(reasons.length, proxy.cuts, `reasons: ${reasons}`);
  } finally {
    await proxy.close();
  }
});

test("the wait between reconnects is no longer than the server's retry:", T, async () => {
  const other = await startSluice({ args: ['--retry', '10ms', '--demo-ttft', '0s', '--demo-tps', '400'] });
  const proxy = await startCutProxy(other.url, { seed: 3 });
  try {
    const delays = [];
    // An hour between reconnects, unless the server's retry: says less.
    const client = new SluiceClient({ baseURL: proxy.url, retry: { initialDelay: 3_600_000, maxDelay: 3_600_000 } });
    const stream = client.chat({ model: 'demo', messages: messages('come back soon') }, {
      onState: (state, info) => state === 'reconnecting' && delays.push(info.delay),
    });
    const result = await stream.done;
    assert.equal(result.status, 'done', result.error?.message);
    assert.ok(delays.length > 0, 'the stream was never cut');
    for (const d of delays) assert.ok(d <= 15, `waited ${d} ms; the server asked for at most 15 (10 ms and its jitter)`);
  } finally {
    await proxy.close();
    await other.stop();
  }
});

test('attach after a reload: from the start, from the middle, past the end (204), and an unknown stream (404) at once', T, async () => {
  const client = new SluiceClient({ baseURL: sluice.url, retry: fast });
  const first = client.chat({ model: 'demo', messages: messages('attach to me') });
  const whole = await first.done;
  const want = await uninterrupted(sluice.url, first.id);
  const half = Math.floor(want.ids.length / 2);

  const fromStart = client.attach(first.id);
  assert.equal((await fromStart.done).text, whole.text);

  const chunks = [];
  const rest = client.attach(first.id, want.ids[half], { text: 'kept: ', onChunk: (c) => chunks.push(c) });
  const r = await rest.done;
  assert.equal(r.status, 'done');
  assert.deepEqual(chunks, want.chunks.slice(half + 1));
  assert.equal(r.text, 'kept: ' + want.chunks.slice(half + 1).map((c) => c.choices[0]?.delta?.content ?? '').join(''));

  const past = client.attach(first.id, first.lastEventId);
  assert.deepEqual([(await past.done).status, (await past.done).text], ['done', '']);

  const states = [];
  const unknown = client.attach('0123456789abcdef0123456789abcdef', '', { onState: (s) => states.push(s) });
  const gone = await unknown.done;
  assert.equal(gone.status, 'expired');
  assert.ok(gone.error instanceof SluiceError);
  assert.equal(gone.error.status, 404);
  assert.equal(gone.error.code, 'expired');
  assert.equal(gone.error.error?.code, 'not_found', 'the server error object is kept');
  assert.deepEqual(states, ['closed'], 'a 404 is not retried');
  await assert.rejects(async () => {
    for await (const _ of client.attach('0123456789abcdef0123456789abcdef'));
  }, (err) => err instanceof SluiceError && err.code === 'expired');
});

describe('with a model slow enough to be stopped mid-answer', () => {
  const slow = useSluice(['--demo-tps', '20', '--demo-ttft', '0s']);

  test('stop() cancels on the server and reads to its closing event; the iterator then ends quietly', T, async () => {
    const client = new SluiceClient({ baseURL: slow.url, retry: fast });
    const stream = client.chat({ model: 'demo', messages: messages('stop me early, please, with a long answer') });
    let n = 0;
    for await (const chunk of stream) {
      if (++n === 3) stream.stop();
      assert.ok(chunk.object === 'chat.completion.chunk');
    }
    const r = await stream.done;
    assert.equal(r.status, 'cancelled');
    // What was read is exactly what the server generated before it stopped.
    const log = await openSSE(`${slow.url}/v1/streams/${stream.id}`);
    const events = await log.readToEnd();
    assert.match(events.at(-1).data, /"code":"cancelled"/);
    const text = events.slice(0, -1).map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '').join('');
    assert.equal(r.text, text);
    assert.equal(stream.lastEventId, events.at(-1).id);
  });

  test('a cancel from elsewhere ends the iterator with a SluiceError of code cancelled', T, async () => {
    const client = new SluiceClient({ baseURL: slow.url, retry: fast });
    const stream = client.chat({ model: 'demo', messages: messages('cancel me from elsewhere, with a long answer') });
    await assert.rejects(async () => {
      let n = 0;
      for await (const _ of stream) if (++n === 3) await client.cancel(stream.id);
    }, (err) => err instanceof SluiceError && err.code === 'cancelled' && err.status === 0 && err.error?.type === 'cancelled');
    assert.equal((await stream.done).status, 'cancelled');
  });
});

test('an AbortSignal stops a chat, a subscription and a request; break stops reading but not the answer', T, async () => {
  const client = new SluiceClient({ baseURL: sluice.url, retry: fast });
  const ctl = new AbortController();
  const stream = client.chat({ model: 'demo', messages: messages('abort me') }, { signal: ctl.signal });
  await assert.rejects(async () => {
    for await (const _ of stream) ctl.abort();
  }, { name: 'AbortError' });
  assert.equal((await stream.done).status, 'aborted');

  const subCtl = new AbortController();
  const sub = client.subscribe('abortable', { signal: subCtl.signal });
  await sub.opened;
  setTimeout(() => subCtl.abort(), 10);
  await assert.rejects(async () => {
    for await (const _ of sub);
  }, { name: 'AbortError' });
  assert.equal((await sub.done).status, 'aborted');

  await assert.rejects(client.models({ signal: AbortSignal.abort() }), { name: 'AbortError' });

  const left = client.chat({ model: 'demo', messages: messages('leave me early') });
  for await (const _ of left) break;
  assert.equal((await left.done).status, 'aborted');
  const rest = await client.attach(left.id).done; // the answer went on without its reader
  assert.equal(rest.status, 'done');
  assert.ok(rest.text.length > 0);
});

test('errors are typed and carry the error object; a chat request that gets no answer is not sent twice', T, async () => {
  const keyed = await startSluice({ args: ['--api-keys', '0123456789abcdef0123'] });
  try {
    const anon = new SluiceClient({ baseURL: keyed.url });
    await assert.rejects(anon.models(), (err) => err instanceof SluiceError && err.status === 401 && err.type === 'authentication_error' && err.error?.message === err.message);
    const keyedClient = new SluiceClient({ baseURL: keyed.url, apiKey: '0123456789abcdef0123' });
    assert.deepEqual((await keyedClient.models()).map((m) => m.id), ['demo']);
    const r = await keyedClient.chat({ model: 'no-such-model', messages: messages('hi') }).done;
    assert.equal(r.status, 'error');
    assert.ok(r.error instanceof SluiceError);
    assert.deepEqual([r.error.status, r.error.param], [404, 'model']);
  } finally {
    await keyed.stop();
  }

  let connections = 0;
  const hangUp = net.createServer((c) => {
    connections++;
    c.once('data', () => c.destroy());
  });
  await new Promise((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
  try {
    const client = new SluiceClient({ baseURL: `http://127.0.0.1:${hangUp.address().port}`, retry: fast });
    const r = await client.chat({ model: 'demo', messages: messages('once') }).done;
    assert.equal(r.status, 'error');
    assert.ok(r.error instanceof ConnectionError, r.error?.name);
    assert.equal(r.error.code, 'network');
    assert.equal(connections, 1, 'the request was sent again');
  } finally {
    await new Promise((resolve) => hangUp.close(resolve));
  }
});

test("the README's JavaScript example runs as it is written", T, async () => {
  const readme = await readFile(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### JavaScript and TypeScript'));
  const code = section.match(/```js\n([\s\S]*?)```/)?.[1];
  assert.ok(code?.includes("from '@sluice-dev/client'"), 'no example in the README');
  // In this folder, so that the package resolves as it would in an app.
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), `readme-example-${process.pid}.mjs`);
  await writeFile(file, code.replaceAll('http://127.0.0.1:8080', sluice.url));
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file], { timeout: 30_000 });
    const client = new SluiceClient({ baseURL: sluice.url });
    const want = await client.chat({ model: 'demo', messages: messages('Hello!') }).done;
    assert.equal(stdout, want.text + '\n');
  } finally {
    await rm(file, { force: true });
  }
});
