// Resume, the way a browser app built on fetchEventSource does it: POST the
// chat request, read the SSE body with a WHATWG parser, lose the connection
// mid-answer, and reconnect to GET /v1/streams/{id} with Last-Event-ID. The
// answer must come out whole: nothing lost, nothing twice.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useSluice } from './server.js';
import { assertSSEHeaders, describe as show, idsOf, openSSE, postChat, textOf } from './sse.js';

const TPS = 200;
const T = { timeout: 30_000 };
const messages = [{ role: 'user', content: 'Explain how a chat answer survives a dropped connection.' }];

let reference; // an uninterrupted POST read of the same prompt
const sluice = useSluice(['--demo-tps', String(TPS), '--demo-ttft', '0s'], async ({ url }) => {
  reference = await postChat(url, messages);
  await reference.readToEnd();
});

/**
 * Asserts on the raw bytes, not through the parser: every complete event
 * block that has a data: line has an id: line, and retry: came once.
 */
function assertWire(reader, what) {
  const blocks = reader.raw.split('\n\n');
  if (!reader.ended) blocks.pop(); // cut mid-block
  for (const block of blocks) {
    const lines = block.split('\n');
    if (lines.some((l) => l.startsWith('data:'))) {
      assert.ok(lines.some((l) => l.startsWith('id:')), `${what}: event without id:\n${block}`);
    }
  }
  assert.equal(reader.retries.length, 1, `${what}: retry: came ${reader.retries.length} times`);
  assert.ok(reader.retries[0] > 0, `${what}: retry: ${reader.retries[0]}`);
  assert.match(reader.raw, /^retry: \d+\n/, `${what}: the body does not start with retry:`);
  assert.deepEqual(reader.parseErrors, [], `${what}: the parser found errors`);
  for (const e of reader.events) assert.ok(e.id, `${what}: an event without an id: ${JSON.stringify(e)}`);
}

/** Reads the whole stream id from the start, after it has ended. */
async function fullRead(id) {
  const r = await openSSE(`${sluice.url}/v1/streams/${id}`);
  await assertSSEHeaders(r, 'full read');
  await r.readToEnd();
  assertWire(r, 'full read');
  assert.equal(r.events.at(-1)?.data, '[DONE]', `full read does not end with [DONE]: ${show(r)}`);
  return r.events;
}

/** Opens stream id after lastId, by header or by ?last_event_id=. */
async function resume(id, lastId, { query = false } = {}) {
  const url = `${sluice.url}/v1/streams/${id}` + (query && lastId ? `?last_event_id=${encodeURIComponent(lastId)}` : '');
  const headers = !query && lastId ? { 'Last-Event-ID': lastId } : {};
  return openSSE(url, { headers });
}

test('an uninterrupted stream: SSE headers, retry once, an id on every event, [DONE] last', T, async () => {
  const r = reference;
  await assertSSEHeaders(r, 'POST');
  assert.match(r.headers.get('sluice-stream-id') ?? '', /^[0-9a-f]{32}$/);
  assert.ok(r.ended);
  assertWire(r, 'POST');
  const ids = idsOf(r.events);
  assert.equal(new Set(ids).size, ids.length, `repeated ids: ${ids}`);
  assert.equal(r.events.at(-1).data, '[DONE]', show(r));
  assert.ok(r.events.length >= 10, `only ${r.events.length} events`);
  for (const e of r.events.slice(0, -1)) {
    assert.equal(JSON.parse(e.data).object, 'chat.completion.chunk', e.data);
  }
  assert.ok(textOf(r.events).trim().length > 0);

  // A second, uninterrupted read of the same stream gives the same events.
  const again = await fullRead(r.headers.get('sluice-stream-id'));
  assert.deepEqual(idsOf(again), ids);
  assert.deepEqual(again.map((e) => e.data), r.events.map((e) => e.data));
});

test('events are flushed as the model makes them, not buffered to the end', T, () => {
  // At TPS tokens a second the answer takes a while; a buffering server
  // would deliver everything at once, at the end.
  const times = reference.times;
  const content = reference.events.length - 2; // less the role chunk and [DONE]
  const minSpread = (0.5 * content * 1000) / TPS;
  const spread = times.at(-1) - times[1];
  assert.ok(spread >= minSpread, `${content} events came within ${spread.toFixed(0)} ms (expected ≥ ${minSpread} ms at ${TPS} tps)`);
  const half = times[1] + spread / 2;
  const early = times.filter((t) => t < half).length;
  assert.ok(early >= content / 4, `only ${early} of ${content} events arrived in the first half of the answer`);
});

/**
 * Where a connection is cut, in bytes of its body: 'retry' just after the
 * retry: field (before any event), 'mid-event' in the middle of an event
 * past half the answer, a fraction f at f times the length of a whole answer.
 */
function cutByte(where) {
  const raw = reference.raw;
  const bytes = (chars) => Buffer.byteLength(raw.slice(0, chars));
  const afterRetry = raw.indexOf('\n') + 1; // retry: shares the first event's block
  if (where === 'retry') return bytes(afterRetry);
  if (where === 'mid-event') {
    let at = afterRetry;
    for (let i = 0; i < Math.floor(reference.events.length * 0.55); i++) at = raw.indexOf('\n\n', at) + 2;
    return bytes(Math.floor((at + raw.indexOf('\n\n', at)) / 2));
  }
  return Math.floor(Buffer.byteLength(raw) * where);
}

// Each cut is one client: where it loses the connection (possibly more than
// once: each step is one connection), and whether it then resumes with the
// ?last_event_id= query instead of the Last-Event-ID header.
const cuts = [
  { name: 'after the first event', plan: [{ events: 1 }] },
  { name: 'after a third of the events', plan: [{ events: 1 / 3 }] },
  { name: 'in the middle of an event', plan: [{ byte: 'mid-event' }] },
  { name: 'just before [DONE]', plan: [{ events: -1 }] },
  { name: 'twice, resuming by ?last_event_id= the second time', plan: [{ byte: 0.2 }, { byte: 0.6, resumeByQuery: true }] },
  { name: 'before the first event (resume from the start)', plan: [{ byte: 'retry' }] },
];

for (const { name, plan } of cuts) {
  test(`resume after a cut ${name} gives the whole answer, no id lost or repeated`, T, async () => {
    const n = reference.events.length;
    let r = await postChat(sluice.url, messages);
    await assertSSEHeaders(r, 'POST');
    const id = r.headers.get('sluice-stream-id');
    assert.match(id ?? '', /^[0-9a-f]{32}$/);

    const seen = []; // every event this client processed, over all its connections
    let lastId = '';
    let query = false;
    for (const [i, step] of plan.entries()) {
      if (i > 0) {
        r = await resume(id, lastId, { query });
        await assertSSEHeaders(r, `resume ${i}`);
      }
      let got;
      if (step.events !== undefined) {
        const k = step.events < 0 ? n + step.events : step.events < 1 ? Math.floor(n * step.events) : step.events;
        got = await r.take(k);
        r.abort();
      } else {
        got = (await r.cutAtByte(cutByte(step.byte))).slice();
        assert.ok(!r.ended, `the stream ended before the cut: ${show(r)}`);
        if (step.byte === 'mid-event') assert.ok(!r.raw.endsWith('\n\n'), `the cut was meant to fall inside an event: ${show(r)}`);
      }
      assertWire(r, `connection ${i}`);
      assert.ok(!got.some((e) => e.data === '[DONE]'), 'the cut came after [DONE]');
      seen.push(...got);
      if (got.length) lastId = got.at(-1).id;
      query = !!step.resumeByQuery;
    }

    r = await resume(id, lastId, { query });
    await assertSSEHeaders(r, 'last resume');
    const rest = await r.readToEnd();
    assertWire(r, 'last resume');
    assert.equal(rest.at(-1)?.data, '[DONE]', `the resumed stream does not end with [DONE]: ${show(r)}`);
    seen.push(...rest);

    const full = await fullRead(id);
    assert.deepEqual(idsOf(seen), idsOf(full), 'ids seen over the connections differ from the ids of one full read');
    assert.equal(textOf(seen), textOf(full));
    assert.equal(textOf(full), textOf(reference.events), 'the same prompt gave a different answer');
  });
}

test('resuming after [DONE] answers 204, so EventSource stops reconnecting', T, async () => {
  const r = await postChat(sluice.url, [{ role: 'user', content: 'A short one, please.' }]);
  const events = await r.readToEnd();
  const done = events.at(-1);
  assert.equal(done.data, '[DONE]');
  const id = r.headers.get('sluice-stream-id');

  const res = await fetch(`${sluice.url}/v1/streams/${id}`, { headers: { 'Last-Event-ID': done.id } });
  assert.equal(res.status, 204, await res.clone().text());
  assert.equal(await res.text(), '');

  const q = await fetch(`${sluice.url}/v1/streams/${id}?last_event_id=${encodeURIComponent(done.id)}`);
  assert.equal(q.status, 204);
  await q.body?.cancel();
});

test('an unknown stream id answers 404 with an OpenAI-style error', T, async () => {
  const res = await fetch(`${sluice.url}/v1/streams/${'0'.repeat(32)}`);
  const body = await res.text();
  assert.equal(res.status, 404, body);
  const json = JSON.parse(body);
  assert.equal(typeof json.error?.message, 'string', body);
});

test('a second reader attached mid-answer gets the same events as the first', T, async () => {
  const first = await postChat(sluice.url, messages);
  const id = first.headers.get('sluice-stream-id');
  const e1 = await first.next(); // the answer has started
  assert.ok(e1);
  const second = await openSSE(`${sluice.url}/v1/streams/${id}`);
  await assertSSEHeaders(second, 'second reader');
  const [a, b] = await Promise.all([first.readToEnd(), second.readToEnd()]);
  assert.deepEqual(idsOf(b), idsOf(a));
  assert.equal(textOf(b), textOf(a));
  assert.equal(b.at(-1).data, '[DONE]');
});

test('a cancelled stream ends with an error event, not [DONE], for every reader', T, async () => {
  const r = await postChat(sluice.url, [{ role: 'user', content: 'Give me a long answer.' }]);
  const id = r.headers.get('sluice-stream-id');
  assert.ok(await r.next());
  const res = await fetch(`${sluice.url}/v1/streams/${id}/cancel`, { method: 'POST' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { id, object: 'stream', status: 'cancelled' });

  const events = await r.readToEnd();
  const last = events.at(-1);
  assert.ok(!events.some((e) => e.data === '[DONE]'), 'a cancelled stream sent [DONE]');
  assert.ok(last.id, 'the error event has no id');
  const err = JSON.parse(last.data).error;
  assert.ok(err, `last event is not an error: ${last.data}`);
  assert.equal(err.code, 'cancelled', last.data);
  assert.equal(typeof err.message, 'string');

  // A reader who comes later sees the same ending.
  const later = await openSSE(`${sluice.url}/v1/streams/${id}`);
  const again = await later.readToEnd();
  assert.deepEqual(idsOf(again), idsOf(events));
  assert.equal(again.at(-1).data, last.data);
});
