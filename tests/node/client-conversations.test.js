// @sluice-dev/client's conversation calls (clients/js/src/conversations.js)
// against the real sluice binary, which keeps conversations in SQLite in a
// data directory of the test's own: every call of the API, paging, search,
// a chat stored as it streams and answered again as a sibling, the change
// feed seen by another client, and the errors an application must handle.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SluiceClient, SluiceError, itemText } from '@sluice-dev/client';
import { startSluice, useSluice } from './server.js';

const T = { timeout: 60_000 };

const sluice = useSluice(['--demo-tps', '400', '--demo-ttft', '0s']);

/** Polls fn until it returns something truthy (the server stores an answer's end after its stream ends). */
async function until(fn, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

test('a conversation is made, read, renamed, listed, searched, exported and deleted', T, async () => {
  const client = new SluiceClient({ baseURL: sluice.url });
  const conv = await client.conversations.create({
    title: 'Rivers',
    metadata: { topic: 'geo' },
    items: [
      { type: 'message', role: 'user', content: 'Which river is longest? (a walrus asks)' },
      { role: 'assistant', content: [{ type: 'output_text', text: 'The Nile, by most counts.' }] },
    ],
  });
  assert.match(conv.id, /^conv_[0-9a-f]{32}$/);
  assert.equal(conv.object, 'conversation');
  assert.deepEqual(conv.metadata, { topic: 'geo' });

  const items = await client.conversations.items.list(conv.id, { order: 'asc' });
  assert.deepEqual(items.data.map((it) => [it.role, itemText(it)]), [
    ['user', 'Which river is longest? (a walrus asks)'],
    ['assistant', 'The Nile, by most counts.'],
  ]);
  assert.equal(items.data[1].parent_id, items.data[0].id, 'each item goes under the one before');
  assert.equal((await client.conversations.retrieve(conv.id)).current_id, items.data[1].id);
  const one = await client.conversations.items.list(conv.id, { order: 'asc', limit: 1 });
  assert.deepEqual([one.data.length, one.hasMore], [1, true]);
  const walked = [];
  for await (const it of one) walked.push(it.id);
  assert.deepEqual(walked, items.data.map((it) => it.id), 'for await reads the items page by page, in order');
  const desc = await client.conversations.items.list(conv.id);
  assert.deepEqual(desc.data.map((it) => it.id), items.data.map((it) => it.id).reverse(), 'newest first by default, as OpenAI');

  const renamed = await client.conversations.update(conv.id, { title: 'Long rivers' });
  assert.equal(renamed.title, 'Long rivers');
  assert.equal((await client.conversations.retrieve(conv.id)).title, 'Long rivers');

  const added = await client.conversations.items.create(conv.id, [{ role: 'user', content: 'And the second?' }]);
  assert.equal(added.data.length, 1);
  assert.equal(added.data[0].parent_id, items.data[1].id, 'an added item goes under the current one');
  assert.equal(itemText(await client.conversations.items.retrieve(conv.id, added.data[0].id)), 'And the second?');
  await client.conversations.items.delete(conv.id, added.data[0].id);
  await assert.rejects(client.conversations.items.retrieve(conv.id, added.data[0].id), (err) => err instanceof SluiceError && err.status === 404);

  const found = await client.conversations.list({ q: 'WALRUS' });
  assert.deepEqual(found.data.map((c) => c.id), [conv.id], 'the search reads the messages, whatever the case');
  assert.deepEqual((await client.conversations.list({ q: 'no such text anywhere' })).data, []);

  const json = JSON.parse(await client.conversations.export(conv.id));
  assert.ok(JSON.stringify(json).includes('The Nile, by most counts.'), 'the JSON export holds the answer');
  const md = await client.conversations.export(conv.id, { format: 'markdown' });
  assert.match(md, /Long rivers/);
  assert.match(md, /The Nile, by most counts\./);

  const gone = await client.conversations.delete(conv.id);
  assert.deepEqual(gone, { id: conv.id, object: 'conversation.deleted', deleted: true });
  await assert.rejects(client.conversations.retrieve(conv.id), (err) => err instanceof SluiceError && err.status === 404 && err.code !== null);
});

test('a list is read a page at a time, newest change first, and for await walks every page', T, async () => {
  const server = await startSluice({ args: ['--demo-tps', '0'] });
  try {
    const client = new SluiceClient({ baseURL: server.url });
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await client.conversations.create({ title: `paged ${i}` })).id);
    // The oldest one changes last: it comes first.
    await client.conversations.update(made[0], { title: 'paged 0, renamed' });
    const first = await client.conversations.list({ limit: 2 });
    assert.equal(first.data.length, 2);
    assert.equal(first.hasMore, true);
    assert.equal(first.data[0].id, made[0], 'the conversation changed last comes first');
    const second = await first.nextPage();
    assert.equal(second.data.length, 2);
    const all = [];
    for await (const c of first) all.push(c.id);
    assert.equal(all.length, 5, 'five conversations over three pages, none twice');
    assert.deepEqual(new Set(all), new Set(made));
    const last = await (await second.nextPage()).nextPage();
    assert.equal(last, null, 'no page after the last');
  } finally {
    await server.stop();
  }
});

test('a chat in a conversation is stored as it streams; answered again, it becomes a sibling', T, async () => {
  const client = new SluiceClient({ baseURL: sluice.url });
  const conv = await client.conversations.create({ title: 'Chat' });
  const stream = client.chat({ model: 'demo', messages: [{ role: 'user', content: 'Tell me something short' }], conversation: conv.id });
  const r = await stream.done;
  assert.equal(r.status, 'done');
  assert.equal(stream.conversationId, conv.id);
  assert.match(stream.messageId ?? '', /^msg_/);
  const answer = await until(async () => {
    const it = await client.conversations.items.retrieve(conv.id, stream.messageId);
    return it.status === 'completed' && it;
  }, 'the stored answer to complete');
  assert.equal(itemText(answer), r.text, 'the stored answer is the streamed one');
  assert.equal(answer.stream_id, stream.id);
  assert.equal(answer.model, 'demo');
  const question = await client.conversations.items.retrieve(conv.id, answer.parent_id);
  assert.equal(itemText(question), 'Tell me something short');

  // Empty messages under the question: answer it again.
  const again = client.chat({ model: 'demo', messages: [], conversation: conv.id, parent_id: question.id, seed: 7 });
  assert.equal((await again.done).status, 'done');
  const sibling = await client.conversations.items.retrieve(conv.id, again.messageId);
  assert.equal(sibling.parent_id, question.id, 'the new answer is a sibling of the first');
  assert.notEqual(sibling.id, answer.id);
  assert.equal((await client.conversations.retrieve(conv.id)).current_id, sibling.id);
  const all = await client.conversations.items.list(conv.id, { order: 'asc' });
  assert.deepEqual(all.data.map((it) => it.role), ['user', 'assistant', 'assistant']);
});

test('the change feed tells another client of every creation, change and deletion, in order', T, async () => {
  const watcher = new SluiceClient({ baseURL: sluice.url });
  const actor = new SluiceClient({ baseURL: sluice.url });
  const seen = [];
  let wake = () => {};
  const feed = watcher.conversations.events({
    onEvent: (ev) => {
      seen.push(JSON.parse(ev.data));
      wake();
    },
  });
  try {
    await feed.opened;
    const conv = await actor.conversations.create({ title: 'watched' });
    await actor.conversations.update(conv.id, { title: 'watched, renamed' });
    await actor.conversations.delete(conv.id);
    const mine = () => seen.filter((e) => e.id === conv.id).map((e) => e.type);
    while (mine().length < 3) await new Promise((r) => (wake = r));
    assert.deepEqual(mine(), ['conversation.created', 'conversation.updated', 'conversation.deleted']);
    assert.ok(seen.every((e) => Number.isInteger(e.updated_at)), JSON.stringify(seen));
    assert.match(feed.lastEventId, /\S/, 'the feed can be resumed from its last event');
  } finally {
    feed.close();
  }
  assert.equal((await feed.done).status, 'closed');
});

test("another key's conversation is refused with 403, and a server that keeps none answers 404", T, async () => {
  const [ann, bob] = ['ann-key-0123456789abcdef', 'bob-key-0123456789abcdef'];
  const keyed = await startSluice({ args: ['--api-keys', `${ann},${bob}`] });
  try {
    const conv = await new SluiceClient({ baseURL: keyed.url, apiKey: ann }).conversations.create({ title: "ann's" });
    const asBob = new SluiceClient({ baseURL: keyed.url, apiKey: bob });
    await assert.rejects(asBob.conversations.retrieve(conv.id), (err) => err instanceof SluiceError && err.status === 403);
    await assert.rejects(asBob.conversations.delete(conv.id), (err) => err.status === 403);
    assert.deepEqual((await asBob.conversations.list()).data, [], "bob's list holds none of ann's");
    await assert.rejects(new SluiceClient({ baseURL: keyed.url }).conversations.list(), (err) => err.status === 401);
  } finally {
    await keyed.stop();
  }
  const off = await startSluice({ args: ['--data-dir', 'off'] });
  try {
    const client = new SluiceClient({ baseURL: off.url });
    await assert.rejects(client.conversations.list(), (err) => err instanceof SluiceError && err.status === 404 && /keeps no conversations/.test(err.message));
    const feed = client.conversations.events();
    await assert.rejects(feed.opened, (err) => err.status === 404);
    assert.equal((await feed.done).status, 'error');
  } finally {
    await off.stop();
  }
});
