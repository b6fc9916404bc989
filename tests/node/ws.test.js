// /ws against an independent client: the npm `ws` package, which writes
// RFC 6455 frames its own way (masked, fragmented on request, pings of its
// own, close codes) and checks what the server sends (it fails the
// connection on any framing error). Each test proves one promise of
// ws/doc.go on the wire.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startSluice, useSluice } from './server.js';
import { openSSE, postJSON, textOf } from './sse.js';

const T = { timeout: 30_000 };
const HEARTBEAT_MS = 100;
const WRITE_TIMEOUT_MS = 600;

const sluice = useSluice(['--demo-tps', '400', '--demo-ttft', '20ms',
  '--heartbeat', `${HEARTBEAT_MS}ms`, '--write-timeout', `${WRITE_TIMEOUT_MS}ms`, '--max-body-bytes', String(64 << 10)]);

const wsURL = (base) => base.replace(/^http/, 'ws') + '/ws';

/**
 * Opens a connection and collects what arrives: frames (parsed), pings,
 * and the close code and reason. next(pred) waits for the next frame
 * that pred accepts.
 */
function connect(url = wsURL(sluice.url), protocols = undefined, opts = {}) {
  const ws = new WebSocket(url, protocols, opts);
  const c = { ws, frames: [], pings: 0, waiters: [], closed: null, error: null };
  ws.on('message', (data, isBinary) => {
    assert.equal(isBinary, false, 'every server message is a text frame');
    c.frames.push(JSON.parse(data.toString('utf8')));
    wake(c);
  });
  ws.on('ping', () => c.pings++);
  ws.on('error', (err) => (c.error = err));
  c.closing = new Promise((resolve) => ws.on('close', (code, reason) => {
    c.closed = { code, reason: reason.toString() };
    wake(c);
    resolve(c.closed);
  }));
  c.open = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  c.open.catch(() => {}); // a test that expects a refusal looks elsewhere
  c.send = (msg) => ws.send(JSON.stringify(msg));
  c.next = (pred = () => true, ms = 10_000) => new Promise((resolve, reject) => {
    const look = () => {
      const i = c.frames.findIndex(pred);
      if (i >= 0) {
        resolve(c.frames.splice(0, i + 1).at(-1));
        return true;
      }
      if (c.closed) {
        reject(new Error(`closed ${JSON.stringify(c.closed)} while waiting; frames: ${JSON.stringify(c.frames)}`));
        return true;
      }
      return false;
    };
    if (look()) return;
    const timer = setTimeout(() => reject(new Error(`no frame after ${ms} ms; have ${JSON.stringify(c.frames)}`)), ms);
    c.waiters.push(() => {
      if (!look()) return false;
      clearTimeout(timer);
      return true;
    });
  });
  return c;
}

function wake(c) {
  c.waiters = c.waiters.filter((w) => !w());
}

/** Reads a stream's frames until its last one. */
async function untilEnd(c, stream) {
  const out = [];
  for (;;) {
    const f = await c.next((f) => f.type === 'event' && f.stream === stream);
    out.push(f);
    if (f.end) return out;
  }
}

const chatBody = (content) => ({ model: 'demo', messages: [{ role: 'user', content }] });

test('a chat.start sent in masked fragments, with pings between them, streams the same answer as SSE', T, async () => {
  const c = connect();
  await c.open;
  let pongs = 0;
  c.ws.on('pong', () => pongs++);
  const msg = JSON.stringify({ type: 'chat.start', id: 'frag', body: chatBody('fragments, please ✓') });
  // Three fragments, cut inside the multi-byte character, and a ping
  // between each: the server puts the message together and answers pings
  // at once, between fragments.
  const bytes = Buffer.from(msg);
  const cut = bytes.indexOf(Buffer.from('✓')) + 1;
  c.ws.send(bytes.subarray(0, 10), { binary: false, fin: false });
  c.ws.ping('a');
  c.ws.send(bytes.subarray(10, cut), { binary: false, fin: false });
  c.ws.ping('b');
  c.ws.send(bytes.subarray(cut), { binary: false, fin: true });
  const started = await c.next((f) => f.type === 'started');
  assert.equal(started.id, 'frag');
  const frames = await untilEnd(c, started.stream);
  assert.equal(frames.at(-1).data, '[DONE]');
  assert.equal(frames.at(-1).end, 'done');
  assert.equal(pongs, 2, 'both pings answered');

  // The same log over SSE: the same IDs and data, event for event.
  const r = await openSSE(`${sluice.url}/v1/streams/${started.stream}`);
  const events = await r.readToEnd();
  assert.deepEqual(frames.map((f) => f.id), events.map((e) => e.id));
  assert.deepEqual(frames.map((f) => f.data), events.map((e) => e.data));
  assert.ok(textOf(events.slice(0, -1)).length > 0);
  c.ws.close(1000);
  assert.equal((await c.closing).code, 1000, 'a clean close is echoed');
});

test('close codes: the client\'s own is echoed, an oversized message gets 1009, an unmasked frame 1002', T, async () => {
  const a = connect();
  await a.open;
  a.ws.close(4321, 'bye');
  assert.equal((await a.closing).code, 4321);

  // --max-body-bytes 64 KiB: a message may be 64 KiB more (the envelope).
  const b = connect();
  await b.open;
  b.send({ type: 'topic.publish', topic: 'big', data: 'x'.repeat(128 << 10) + 'y' });
  const closed = await b.closing;
  assert.equal(closed.code, 1009, JSON.stringify(closed));
  assert.match(closed.reason, /too big/);

  // A message just under the limit is carried out.
  const ok = connect();
  await ok.open;
  ok.send({ type: 'topic.publish', id: 'p', topic: 'big', data: 'x'.repeat(100 << 10) });
  assert.equal((await ok.next()).type, 'published');
  ok.ws.close();

  const d = connect();
  await d.open;
  d.ws.send('{"type":"topic.subscribe","topic":"x"}', { mask: false });
  assert.equal((await d.closing).code, 1002, 'frames from a client must be masked (RFC 6455 5.1)');
});

test('an idle connection is pinged every heartbeat and outlives many write timeouts', T, async () => {
  const c = connect();
  await c.open;
  c.send({ type: 'topic.subscribe', id: 's', topic: 'quiet-ws' });
  await c.next((f) => f.type === 'subscribed');
  const quietFor = 5 * WRITE_TIMEOUT_MS;
  await new Promise((r) => setTimeout(r, quietFor));
  assert.ok(c.pings >= quietFor / HEARTBEAT_MS / 2, `${c.pings} pings in ${quietFor} ms`);
  const pub = await postJSON(`${sluice.url}/v1/topics/quiet-ws/events`, { data: 'late' });
  assert.equal(pub.status, 201);
  assert.equal((await c.next((f) => f.type === 'event')).data, 'late');
  assert.equal(c.closed, null);
  c.ws.close();
});

test('a reader that stops reading is cut off with 1008 once its socket stays full for the write timeout', T, async () => {
  // A server of its own, which logs the cut-off: the signal to read again.
  const own = await startSluice({ args: ['--write-timeout', `${WRITE_TIMEOUT_MS}ms`, '--log-level', 'info'] });
  try {
    const topic = 'flood-ws';
    const big = 'z'.repeat(60 << 10);
    for (let i = 0; i < 200; i++) {
      const res = await postJSON(`${own.url}/v1/topics/${topic}/events`, { data: big });
      assert.equal(res.status, 201);
    }
    const c = connect(wsURL(own.url));
    await c.open;
    c.ws.pause(); // read nothing: the server's writes fill the socket
    c.send({ type: 'topic.subscribe', id: 's', topic, from: 'start' });
    const deadline = Date.now() + 10 * WRITE_TIMEOUT_MS;
    while (!own.logs().includes('cut off a slow reader')) {
      assert.ok(Date.now() < deadline, 'the reader was not cut off');
      await new Promise((r) => setTimeout(r, 50));
    }
    c.ws.resume();
    const closed = await c.closing;
    assert.equal(closed.code, 1008, JSON.stringify(closed));
    assert.match(closed.reason, /too slow/);
    const events = c.frames.filter((f) => f.type === 'event');
    assert.ok(events.length > 0 && events.length < 200, `${events.length} events before the cut`);
    // What came before the cut is whole and in order: a resume goes on from the last one.
    assert.ok(events.every((f) => f.data === big));
  } finally {
    await own.stop();
  }
});

test('the key can travel in Sec-WebSocket-Protocol, never in the URL, and is not selected back', T, async () => {
  const key = 'sk-ws-node-0123456789abcdef';
  const keyed = await startSluice({ args: ['--api-keys', key, '--log-level', 'debug'] });
  try {
    const b64 = Buffer.from(key).toString('base64url');
    const c = connect(wsURL(keyed.url), ['sluice', `sluice.key.${b64}`]);
    await c.open;
    assert.equal(c.ws.protocol, 'sluice');
    c.send({ type: 'chat.start', body: chatBody('keyed, short') });
    const started = await c.next((f) => f.type === 'started');
    assert.equal((await untilEnd(c, started.stream)).at(-1).data, '[DONE]');
    c.ws.close();

    const wrong = connect(wsURL(keyed.url), ['sluice', `sluice.key.${Buffer.from('sk-wrong-0123456789abcdef').toString('base64url')}`]);
    const status = await new Promise((resolve) => wrong.ws.on('unexpected-response', (_, res) => resolve(res.statusCode)));
    assert.equal(status, 401);
    wrong.ws.terminate();
    assert.ok(!keyed.logs().includes(key) && !keyed.logs().includes(b64), 'the key is not in the logs');
  } finally {
    await keyed.stop();
  }
});
