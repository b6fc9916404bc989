// Topics: the broadcast hub of the seeds. Subscribers read with fetch and a
// WHATWG parser, because Node 20 has no EventSource of its own.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useSluice } from './server.js';
import { assertSSEHeaders, describe as show, openSSE, postJSON } from './sse.js';

const HEARTBEAT_MS = 300;
const T = { timeout: 20_000 };

const sluice = useSluice(['--heartbeat', `${HEARTBEAT_MS}ms`]);

/** Subscribes; returns once the response headers arrived. */
async function subscribe(path, headers = {}) {
  const r = await openSSE(sluice.url + path, { headers });
  await assertSSEHeaders(r, `GET ${path}`);
  return r;
}

/** Publishes body on a topic and returns the answer, checked. */
async function publish(topic, body) {
  const res = await postJSON(`${sluice.url}/v1/topics/${topic}/events`, body);
  const text = await res.text();
  assert.equal(res.status, 201, `publish ${JSON.stringify(body)}: ${text}`);
  const json = JSON.parse(text);
  assert.equal(json.object, 'topic.event');
  assert.equal(json.topic, topic);
  assert.equal(typeof json.id, 'string');
  assert.ok(json.id.length > 0);
  return json;
}

test('Node 20 has no built-in EventSource, so these tests subscribe with fetch', {
  skip: process.versions.node.split('.')[0] !== '20' && `Node ${process.versions.node} is not Node 20`,
}, () => {
  assert.equal(typeof globalThis.EventSource, 'undefined');
  assert.equal(typeof globalThis.fetch, 'function');
});

test('two subscribers get every published message, in order, with its id', T, async () => {
  const a = await subscribe('/v1/topics/room/events');
  const b = await subscribe('/v1/topics/room/events');
  const bodies = [
    { data: 'hello, room' },
    { data: 'two\nlines' },
    { event: 'note', data: { n: 3, ok: true } },
  ];
  const published = [];
  for (const body of bodies) published.push(await publish('room', body));
  const ids = published.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, `repeated ids: ${ids}`);

  for (const [who, r] of [['first', a], ['second', b]]) {
    const got = await r.take(3);
    assert.deepEqual(got.map((e) => e.id), ids, `${who} subscriber: ids`);
    assert.deepEqual(got.map((e) => e.data), ['hello, room', 'two\nlines', '{"n":3,"ok":true}'], `${who} subscriber: data`);
    assert.deepEqual(got.map((e) => e.event), [undefined, undefined, 'note'], `${who} subscriber: event names`);
    // On the wire: a multi-line message is one data: line per line.
    assert.ok(r.raw.includes('data: two\ndata: lines\n'), `${who} subscriber raw:\n${r.raw}`);
    assert.ok(r.raw.includes('event: note\n'), `${who} subscriber raw:\n${r.raw}`);
    assert.equal(r.retries.length, 1, `${who} subscriber: retry: came ${r.retries.length} times`);
    r.abort();
  }
});

test('a subscriber only gets what is published after it subscribed, unless it asks for ?from=start', T, async () => {
  const old = [await publish('history', { data: 'old 1' }), await publish('history', { data: 'old 2' })];
  const live = await subscribe('/v1/topics/history/events');
  const replay = await subscribe('/v1/topics/history/events?from=start');
  const fresh = await publish('history', { data: 'new' });

  const [first] = await live.take(1);
  assert.equal(first.id, fresh.id, 'a live subscriber got an event from before it subscribed');
  assert.equal(first.data, 'new');

  const all = await replay.take(3);
  assert.deepEqual(all.map((e) => e.id), [...old, fresh].map((p) => p.id));
  assert.deepEqual(all.map((e) => e.data), ['old 1', 'old 2', 'new']);
  live.abort();
  replay.abort();
});

test('a late joiner with Last-Event-ID replays what it missed, then gets live events', T, async () => {
  const r = await subscribe('/v1/topics/room/events');
  const beforeCut = await publish('room', { data: 'before the cut' });
  const [seen] = await r.take(1);
  assert.equal(seen.id, beforeCut.id);
  r.abort(); // the connection drops

  const missed = [await publish('room', { data: 'missed 1' }), await publish('room', { data: 'missed 2' })];

  const back = await subscribe('/v1/topics/room/events', { 'Last-Event-ID': seen.id });
  const replayed = await back.take(2);
  assert.deepEqual(replayed.map((e) => e.id), missed.map((p) => p.id));
  assert.deepEqual(replayed.map((e) => e.data), ['missed 1', 'missed 2']);

  const liveAgain = await publish('room', { data: 'live again' });
  const [next] = await back.take(1);
  assert.equal(next.id, liveAgain.id);
  assert.equal(next.data, 'live again');
  back.abort();
});

test("the seeds' demo: GET /events and POST /send-message {message: 'hi'} delivers data: hi", T, async () => {
  const events = await subscribe('/events');
  const sameTopic = await subscribe('/v1/topics/default/events');
  const res = await postJSON(sluice.url + '/send-message', { message: 'hi' });
  const body = await res.text();
  assert.ok(res.ok, `POST /send-message: ${res.status} ${body}`);

  const [e] = await events.take(1);
  assert.equal(e.data, 'hi');
  assert.ok(e.id, 'the event has no id');
  assert.match(events.raw, /(^|\n)data: hi\n\n/, `raw body:\n${events.raw}`);

  const [same] = await sameTopic.take(1);
  assert.deepEqual(same, e, '/events is the topic "default"');
  events.abort();
  sameTopic.abort();
});

test('a quiet subscription gets ": ping" heartbeats', T, async () => {
  const r = await subscribe('/v1/topics/quiet/events');
  const start = performance.now();
  while (r.comments.length === 0) assert.ok(await r.pump(), `the stream ended: ${show(r)}`);
  const waited = performance.now() - start;
  assert.equal(r.comments[0].trim(), 'ping');
  assert.ok(waited >= HEARTBEAT_MS / 2, `a heartbeat came after ${waited.toFixed(0)} ms, before the stream was idle`);
  assert.equal(r.events.length, 0);
  r.abort();
});

test('bad publishes are refused with 400 and an OpenAI-style error', T, async () => {
  const cases = [
    { path: '/v1/topics/room/events', body: { event: 'no-data' }, param: 'data' },
    { path: '/v1/topics/bad%20name!/events', body: { data: 'x' } },
    { path: '/v1/topics/room/events', body: '{"data": ' },
    { path: '/send-message', body: { text: 'not message' }, param: 'message' },
  ];
  for (const { path, body, param } of cases) {
    const res = await postJSON(sluice.url + path, body);
    const text = await res.text();
    assert.equal(res.status, 400, `POST ${path} ${JSON.stringify(body)}: ${text}`);
    const err = JSON.parse(text).error;
    assert.equal(typeof err?.message, 'string', text);
    if (param) assert.equal(err.param, param, text);
  }
});
