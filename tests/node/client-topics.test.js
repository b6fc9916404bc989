// @sluice-dev/client following topics on the real sluice binary, through a
// proxy that cuts every event stream at random points, compared with what
// an independent parser reads in one uninterrupted connection.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceClient, SluiceError } from '@sluice-dev/client';
import { startSluice, useSluice } from './server.js';
import { startCutProxy } from './cut-proxy.js';
import { openSSE } from './sse.js';

const T = { timeout: 60_000 };
const fast = { initialDelay: 1, maxDelay: 20 };

const sluice = useSluice([]);

/** The first n events of a topic, read from its start in one connection. */
async function uninterrupted(topic, n) {
  const r = await openSSE(`${sluice.url}/v1/topics/${topic}/events?from=start`);
  const events = await r.take(n);
  r.abort();
  return events.map((e) => ({ id: e.id, event: e.event ?? 'message', data: e.data }));
}

test('subscribers through a proxy that cuts every stream read each event once, in order, by iterator and by onEvent', T, async () => {
  const proxy = await startCutProxy(sluice.url, { seed: 31, maxBytes: 2048 });
  const direct = new SluiceClient({ baseURL: sluice.url });
  const client = new SluiceClient({ baseURL: proxy.url, retry: fast });
  const count = 240;
  try {
    const readers = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      // Half replay the topic, half follow it from before its first event;
      // half iterate, half take callbacks.
      const opts = i % 2 ? {} : { from: 'start' };
      const got = [];
      let done;
      if (i % 4 < 2) {
        const sub = client.subscribe('chaos', opts);
        await sub.opened;
        done = (async () => {
          for await (const ev of sub) if (got.push(ev) === count) break;
          return sub.done;
        })();
      } else {
        let sub;
        done = new Promise((resolve) => {
          sub = client.subscribe('chaos', { ...opts, onEvent: (ev, s) => got.push(ev) === count && s.close() });
          sub.done.then(resolve);
        });
        await sub.opened;
      }
      return { got, done };
    }));
    for (let i = 0; i < count; i++) {
      await direct.publish('chaos', i % 7 ? { i, text: `ünïcode ${i}` } : `plain ${i}\nsecond line`, { event: i % 5 ? undefined : 'fifth' });
    }
    const want = await uninterrupted('chaos', count);
    for (const [i, r] of readers.entries()) {
      assert.equal((await r.done).status, 'closed', `subscriber ${i}`);
      assert.deepEqual(r.got, want, `subscriber ${i}`);
    }
    assert.ok(proxy.cuts >= 8, `only ${proxy.cuts} cuts: resuming was not tested`);
  } finally {
    await proxy.close();
  }
});

test('a subscription cut before its first event misses nothing published while it was away', T, async () => {
  const proxy = await startCutProxy(sluice.url, { spare: 1 });
  try {
    const client = new SluiceClient({ baseURL: proxy.url, retry: fast });
    // Published straight to the server: Node's fetch may send a request on
    // a connection whose close-delimited response a cut has just ended,
    // and fail it with "other side closed".
    const direct = new SluiceClient({ baseURL: sluice.url });
    await direct.publish('away', 'before');
    for (const topic of ['away', 'empty-until-now']) {
      const sub = client.subscribe(topic);
      await sub.opened;
      proxy.cutAll();
      const a = await direct.publish(topic, 'while away');
      const b = await direct.publish(topic, { n: 2 }, { event: 'named' });
      const got = [];
      for await (const ev of sub) if (got.push(ev) === 2) break;
      assert.deepEqual(got, [{ id: a.id, event: 'message', data: 'while away' }, { id: b.id, event: 'named', data: '{"n":2}' }], topic);
    }
  } finally {
    await proxy.close();
  }
});

test('a subscription goes on from lastEventId, and one from another incarnation gets a sluice.gap first', T, async () => {
  const client = new SluiceClient({ baseURL: sluice.url, retry: fast });
  const ids = [];
  for (const d of ['zero', 'one', 'two']) ids.push((await client.publish('history', d)).id);

  const sub = client.subscribe('history', { lastEventId: ids[0] });
  const got = [];
  for await (const ev of sub) if (got.push(ev.data) === 2) break;
  assert.deepEqual(got, ['one', 'two']);
  assert.equal(sub.lastEventId, ids[2]);

  const old = client.subscribe('history', { lastEventId: '2' }); // round 1's plain numbers
  const seen = [];
  for await (const ev of old) if (seen.push(ev) === 4) break;
  assert.equal(seen[0].event, 'sluice.gap');
  assert.equal(JSON.parse(seen[0].data).reason, 'replaced');
  assert.deepEqual(seen.slice(1).map((e) => e.id), ids);
});

test('a refused subscription rejects opened and ends with the error; onEvent and iteration do not mix', T, async () => {
  const keyed = await startSluice({ args: ['--api-keys', '0123456789abcdef0123'] });
  try {
    const sub = new SluiceClient({ baseURL: keyed.url }).subscribe('private');
    await assert.rejects(sub.opened, (err) => err instanceof SluiceError && err.status === 401);
    const r = await sub.done;
    assert.equal(r.status, 'error');
    assert.equal(r.error.status, 401);
    await assert.rejects(async () => {
      for await (const _ of sub);
    }, (err) => err === r.error);
  } finally {
    await keyed.stop();
  }
  const client = new SluiceClient({ baseURL: sluice.url });
  const pushed = client.subscribe('mixed', { onEvent: () => {} });
  assert.throws(() => pushed[Symbol.asyncIterator](), TypeError);
  pushed.close();
  assert.deepEqual(await pushed.done, { status: 'closed' });
});
