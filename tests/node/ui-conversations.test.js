// The chat page keeps conversations on the server (issue 15), driven in
// real headless Chromium against the real sluice binary with SQLite in a
// data directory of the test's own. Two browser contexts stand for two
// devices: they share nothing but the server. What a page shows is
// compared with what the server stored or streamed, never with the page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice, useSluice } from './server.js';
import { openSSE, textOf } from './sse.js';
import {
  answer, getJSON, lastAnswer, rendered, send, shownConversation, storedAnswer, useBrowser, waitStatus, waitText,
} from './browser.js';

const T = { timeout: 60_000 };
/** The page's undo window for a delete (sidebar.js's UNDO_MS). */
const UNDO_MS = 8000;

const sluice = useSluice(['--demo-tps', '80', '--demo-ttft', '100ms']);
const b = useBrowser();

/** The titles the sidebar lists. */
function titles(page) {
  return page.locator('.conv-link .conv-title').allInnerTexts();
}

async function waitTitles(page, want) {
  await page.waitForFunction((w) => JSON.stringify([...document.querySelectorAll('.conv-link .conv-title')].map((e) => e.textContent)) === JSON.stringify(w), want);
}

test('two devices see the same chats: made, renamed, answered and deleted in one, the other follows without a reload', { timeout: 90_000 }, async () => {
  // A server of its own: the lists hold this test's chat alone.
  const sluice = await startSluice({ args: ['--demo-tps', '80', '--demo-ttft', '100ms'] });
  b.cleanups.push(() => sluice.stop());
  const a = await b.openPage(sluice.url);
  const other = await b.openPage(sluice.url);

  await send(a, 'Shared chat, short');
  await waitStatus(a, 'done');
  const conv = shownConversation(a);
  await waitTitles(other, ['Shared chat, short']);
  await other.locator('.conv-link', { hasText: 'Shared chat' }).click();
  await waitStatus(other, 'done');
  assert.equal(await other.locator('.msg.user .bubble').innerText(), 'Shared chat, short');
  assert.equal((await answer(other)).text, (await answer(a)).text, 'the other device shows the same answer');

  // Renamed in one: the other's list and title follow.
  await a.locator('.conv-item.active .conv-rename').click();
  await a.locator('.conv-rename-input').fill('Renamed on A');
  await a.locator('.conv-rename-input').press('Enter');
  await waitTitles(other, ['Renamed on A']);
  await other.waitForFunction(() => document.title.startsWith('Renamed on A'));
  assert.equal((await getJSON(sluice, `/v1/conversations/${conv}`)).title, 'Renamed on A');

  // Answered in the other: the first shows the new question, and the
  // answer as it streams, to its end.
  await send(other, 'A follow-up from the other device, short');
  await a.locator('.msg.user .bubble', { hasText: 'A follow-up from the other device' }).waitFor();
  await waitStatus(a, 'done');
  await waitStatus(other, 'done');
  assert.equal((await answer(a)).id, (await answer(other)).id);
  assert.equal((await answer(a)).text, (await answer(other)).text);

  // Deleted in one, then undone: the server never loses it.
  await a.locator('.conv-item.active .conv-delete').click();
  assert.deepEqual(await titles(a), []);
  await a.locator('#toast .toast-action', { hasText: 'Undo' }).click();
  await waitTitles(a, ['Renamed on A']);
  await a.waitForTimeout(UNDO_MS + 1000);
  assert.equal((await fetch(`${sluice.url}/v1/conversations/${conv}`)).status, 200, 'an undone delete never reaches the server');
  assert.deepEqual(await titles(other), ['Renamed on A']);

  // Deleted for real once the undo window has passed: gone everywhere.
  await a.locator('.conv-delete').first().click();
  await other.waitForFunction(() => document.querySelectorAll('.conv-link').length === 0, null, { timeout: UNDO_MS + 10_000 });
  assert.equal((await fetch(`${sluice.url}/v1/conversations/${conv}`)).status, 404);
  await other.waitForSelector('#empty:not([hidden])');
  assert.equal(shownConversation(other), '', 'the other device left the deleted chat');
  assert.deepEqual([...a.errors, ...other.errors], []);
  await a.context().close();
  await other.context().close();
  await sluice.stop(); // a clean exit, or the test fails
});

test('a delete still within its undo window is sent when the page goes away', T, async () => {
  const page = await b.openPage(sluice.url);
  await send(page, 'Delete me on the way out, short');
  await waitStatus(page, 'done');
  const conv = shownConversation(page);
  await page.locator('.conv-item.active .conv-delete').click();
  assert.equal((await fetch(`${sluice.url}/v1/conversations/${conv}`)).status, 200, 'not deleted while Undo is offered');
  await page.goto('about:blank');
  const deadline = Date.now() + 5000;
  while ((await fetch(`${sluice.url}/v1/conversations/${conv}`)).status !== 404) {
    assert.ok(Date.now() < deadline, 'the delete was not sent as the page went away');
    await new Promise((r) => setTimeout(r, 50));
  }
});

test('a reload after the stream expired shows the whole stored answer, on this device and another', T, async () => {
  const server = await startSluice({ args: ['--demo-tps', '200', '--demo-ttft', '0s', '--retention', '1s'] });
  try {
    const page = await b.openPage(server.url);
    await send(page, 'Tell me about reloading pages');
    await waitStatus(page, 'done');
    const { id, text } = await answer(page);
    const stored = await storedAnswer(server, page, id);
    assert.equal(stored.status, 'completed');
    // Wait, past the retention, until the server no longer keeps the stream.
    const deadline = Date.now() + 20_000;
    while ((await fetch(`${server.url}/v1/streams/${id}`)).status !== 404) {
      assert.ok(Date.now() < deadline, 'the stream outlived its retention');
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const p of [page, await b.openPage(server.url, { path: '/#/c/' + shownConversation(page) })]) {
      if (p === page) {
        await page.reload();
        await page.waitForSelector('#app[data-ready]');
      }
      await waitStatus(p, 'done');
      const shown = await answer(p);
      assert.equal(shown.text, text, 'the whole answer shows');
      assert.equal(shown.text, await rendered(p, stored.content), 'it is the stored answer');
      assert.equal(await p.locator(`${lastAnswer} .msg-status.show`).count(), 0, 'no warning that it expired');
      assert.deepEqual(p.errors, []);
    }
  } finally {
    await server.stop();
  }
});

test('a chat opened on another device mid-answer shows the stored text and follows the stream to its end', T, async () => {
  const page = await b.openPage(sluice.url);
  await send(page, 'Write a long answer about streaming');
  await waitText(page, 200);
  const conv = shownConversation(page);
  // The other device's network is slow, so that the stream replayed from
  // its start comes in pieces, each shorter than the stored text at first;
  // and it records, from its first moment, every length the answer shows:
  // the stored text first, then never less.
  const setup = async (p) => {
    const cdp = await p.context().newCDPSession(p);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 20, downloadThroughput: 48 * 1024, uploadThroughput: -1 });
    await p.addInitScript(() => {
      window.lengths = [];
      addEventListener('DOMContentLoaded', () => {
        new MutationObserver(() => {
          const n = document.querySelector('.msg.assistant:last-child .md')?.innerText.length ?? 0;
          if (n && window.lengths.at(-1) !== n) window.lengths.push(n);
        }).observe(document.body, { subtree: true, childList: true, characterData: true });
      });
    });
  };
  const other = await b.openPage(sluice.url, { path: '/#/c/' + conv, ready: false, setup });
  await other.waitForSelector('#app[data-ready]');
  await waitStatus(other, 'done');
  await waitStatus(page, 'done');
  const { id } = await answer(other);
  assert.equal(id, (await answer(page)).id);
  const r = await openSSE(`${sluice.url}/v1/streams/${id}`);
  const events = await r.readToEnd();
  assert.equal(events.at(-1).data, '[DONE]');
  assert.equal((await answer(other)).text, await rendered(other, textOf(events.slice(0, -1))), 'the whole answer, nothing lost or doubled');
  const lengths = await other.evaluate(() => window.lengths);
  assert.ok(lengths.length >= 2, `the answer grew on the other device: ${lengths}`);
  for (let i = 1; i < lengths.length; i++) assert.ok(lengths[i] >= lengths[i - 1], `the text shrank from ${lengths[i - 1]} to ${lengths[i]} characters (of ${lengths.length} lengths shown)`);
  assert.deepEqual(other.errors, []);
});

test('regenerate makes a sibling; < > switches between the answers, and a reload keeps both', T, async () => {
  const page = await b.openPage(sluice.url);
  await send(page, 'Siblings, short');
  await waitStatus(page, 'done');
  const first = (await answer(page)).text;
  await page.locator(`${lastAnswer} [data-action="regenerate"]`).click();
  await page.locator(`${lastAnswer} .branch-pos`, { hasText: '2/2' }).waitFor();
  await waitStatus(page, 'done');
  const second = await answer(page);
  await page.locator(`${lastAnswer} [data-action="prev"]`).click();
  await page.locator(`${lastAnswer} .branch-pos`, { hasText: '1/2' }).waitFor();
  assert.equal((await answer(page)).text, first);
  await page.reload();
  await page.waitForSelector('#app[data-ready]');
  await page.locator(`${lastAnswer} .branch-pos`, { hasText: '2/2' }).waitFor();
  assert.equal((await answer(page)).text, second.text, 'after a reload the newest answer shows');
  await page.locator(`${lastAnswer} [data-action="prev"]`).click();
  assert.equal((await answer(page)).text, first);
  assert.equal(await page.locator('.msg').count(), 2, 'one question, one answer shown');
  assert.deepEqual(page.errors, []);
});

test('search lists only the chats whose title or messages hold the text', T, async () => {
  const server = await startSluice({ args: ['--demo-tps', '0', '--demo-ttft', '0s'] });
  try {
    const page = await b.openPage(server.url);
    for (const q of ['About otters, short', 'About herons, short']) {
      await page.keyboard.press('Control+Shift+O');
      await send(page, q);
      await waitStatus(page, 'done');
    }
    await waitTitles(page, ['About herons, short', 'About otters, short']);
    await page.locator('#search').fill('OTTERS');
    await waitTitles(page, ['About otters, short']);
    await page.locator('#search').fill('nothing like this');
    await waitTitles(page, []);
    assert.match(await page.locator('#no-chats').innerText(), /No chats match/);
    await page.locator('#search').press('Escape');
    await waitTitles(page, ['About herons, short', 'About otters, short']);
  } finally {
    await server.stop();
  }
});

/** Conversations as the page before the server kept them left them in localStorage. */
const legacy = [
  { id: 'a1b2c3d4e5f6a7b8c9d0e1f2', title: 'Old chat one', model: 'demo', createdAt: 1, updatedAt: 1000, messages: [
    { role: 'user', content: 'Old question one' }, { role: 'assistant', content: 'Old answer one', status: 'done' }] },
  { id: 'b1b2c3d4e5f6a7b8c9d0e1f2', title: 'Old chat two', model: 'demo', createdAt: 2, updatedAt: 2000, messages: [
    { role: 'user', content: 'Old question two' }, { role: 'assistant', content: 'Old answer two, cut', status: 'stopped' }] },
];

async function plantLegacy(page) {
  await page.evaluate((chats) => {
    localStorage.setItem('sluice:v1:index', JSON.stringify(chats.map((c) => ({ id: c.id, title: c.title, updatedAt: c.updatedAt }))));
    for (const c of chats) localStorage.setItem('sluice:v1:c:' + c.id, JSON.stringify(c));
  }, legacy);
  await page.reload();
  await page.waitForSelector('#app[data-ready]');
}

test("a browser's own chats are offered for import once: imported whole, never twice, never offered again", T, async () => {
  const server = await startSluice({ args: ['--demo-tps', '0'] });
  try {
    const page = await b.openPage(server.url);
    assert.ok(await page.locator('#import').isHidden(), 'nothing to import in a fresh browser');
    await plantLegacy(page);
    await page.locator('#import:not([hidden])').waitFor();
    assert.match(await page.locator('#import-text').innerText(), /2 chats/);
    // Another tab of the same browser makes the same offer, until one takes it.
    const tab = await b.openPage(server.url, { context: page.context() });
    await tab.locator('#import:not([hidden])').waitFor();
    await page.locator('#import-yes').click();
    await tab.locator('#import').waitFor({ state: 'hidden' });
    await waitTitles(page, ['Old chat two', 'Old chat one']);
    await waitTitles(tab, ['Old chat two', 'Old chat one']);
    const list = await getJSON(server, '/v1/conversations');
    assert.deepEqual(list.data.map((c) => c.title).sort(), ['Old chat one', 'Old chat two']);
    const two = list.data.find((c) => c.title === 'Old chat two');
    const items = await getJSON(server, `/v1/conversations/${two.id}/items?order=asc`);
    assert.deepEqual(items.data.map((it) => [it.role, it.content[0].text]), [['user', 'Old question two'], ['assistant', 'Old answer two, cut']]);

    await page.locator('.conv-link', { hasText: 'Old chat one' }).click();
    await page.locator(`${lastAnswer} .md`, { hasText: 'Old answer one' }).waitFor();
    await page.reload();
    await page.waitForSelector('#app[data-ready]');
    assert.ok(await page.locator('#import').isHidden(), 'not offered again');
    assert.equal((await getJSON(server, '/v1/conversations')).data.length, 2, 'imported once');

    // Declined in another browser: not offered again, and nothing sent.
    const declined = await b.openPage(server.url);
    await plantLegacy(declined);
    await declined.locator('#import-no').click();
    await declined.reload();
    await declined.waitForSelector('#app[data-ready]');
    assert.ok(await declined.locator('#import').isHidden());
    assert.equal((await getJSON(server, '/v1/conversations')).data.length, 2);
    assert.deepEqual([...page.errors, ...tab.errors, ...declined.errors], []);
  } finally {
    await server.stop();
  }
});

test('on a server that keeps no chats, the page keeps them itself and sends the whole history', T, async () => {
  const server = await startSluice({ args: ['--data-dir', 'off', '--demo-tps', '0'] });
  try {
    const page = await b.openPage(server.url);
    assert.match(await page.locator('#no-chats').innerText(), /keeps no chats/);
    const bodies = [];
    page.on('request', (r) => r.url().endsWith('/v1/chat/completions') && bodies.push(JSON.parse(r.postData())));
    await send(page, 'First, short');
    await waitStatus(page, 'done');
    await send(page, 'Second, short');
    await waitStatus(page, 'done');
    assert.deepEqual(bodies[1].messages.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.equal(bodies[1].conversation, undefined);
    await waitTitles(page, ['First, short']);
    assert.deepEqual(page.errors.filter((e) => !/404/.test(e)), []);
  } finally {
    await server.stop();
  }
});
