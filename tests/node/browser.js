// What the browser tests share: headless Chromium (Debian's, via
// playwright-core), a page of the chat UI with its errors and requests
// collected, and readers of what the page shows and what the server keeps.
//
//   const b = useBrowser();               // launched before the file's tests, closed after
//   const page = await b.openPage(url);   // a fresh context: its own localStorage
//
// Whatever a test opens through b is closed after it, pass or fail.

import { after, afterEach, before } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export function useBrowser() {
  const b = { browser: null, cleanups: [] };
  before(async () => {
    b.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  }, { timeout: 60_000 });
  after(() => b.browser?.close(), { timeout: 30_000 });
  afterEach(async () => {
    const todo = b.cleanups.reverse();
    b.cleanups = [];
    for (const fn of todo) await fn().catch(() => {});
  });

  /** A fresh browser context (empty localStorage), closed after the test. */
  b.newContext = async (opts = {}) => {
    const context = await b.browser.newContext({ viewport: { width: 1200, height: 800 }, ...opts });
    b.cleanups.push(() => context.close());
    return context;
  };

  /** A page of the chat UI in context (a fresh one by default), ready, its errors and requests collected. */
  b.openPage = async (url, { context, path = '/', ready = true, setup } = {}) => {
    const page = await (context ?? (await b.newContext())).newPage();
    if (setup) await setup(page); // before the page loads: e.g. a slow network
    page.errors = [];
    page.on('pageerror', (err) => page.errors.push(err.message));
    page.on('console', (m) => m.type() === 'error' && page.errors.push(m.text()));
    page.requests = [];
    page.on('request', (r) => page.requests.push({ method: r.method(), url: r.url(), headers: r.headers() }));
    await page.goto(url + path);
    if (ready) await page.waitForSelector('#app[data-ready]');
    return page;
  };
  return b;
}

/** Types text into the message box and presses Enter. */
export async function send(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

export const lastAnswer = '.msg.assistant:last-child';

/** The last answer: its status, stream ID and rendered text. */
export function answer(page) {
  return page.evaluate((sel) => {
    const li = document.querySelector(sel);
    return li && { status: li.dataset.status, net: li.dataset.net, id: li.dataset.streamId, text: li.querySelector('.md').innerText };
  }, lastAnswer);
}

export async function waitStatus(page, status, timeout = 30_000) {
  await page.waitForSelector(`${lastAnswer}[data-status="${status}"]`, { timeout });
}

export async function waitText(page, minChars) {
  await page.waitForFunction(([sel, n]) => (document.querySelector(sel + ' .md')?.innerText.length ?? 0) >= n, [lastAnswer, minChars]);
}

/** The ID of the conversation the page shows (from its URL). */
export function shownConversation(page) {
  return new URL(page.url()).hash.replace('#/c/', '');
}

/** GET a JSON API path of server, asserting 200. */
export async function getJSON(server, path) {
  const res = await fetch(server.url + path);
  assert.equal(res.status, 200, `GET ${path}: ${res.status}`);
  return res.json();
}

/**
 * The answer of stream id as the server stored it in the page's
 * conversation, once it has ended there (the end is written just after
 * the stream's last event): {content, status, item}.
 */
export async function storedAnswer(server, page, id) {
  const conv = shownConversation(page);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const items = await getJSON(server, `/v1/conversations/${conv}/items?order=desc&limit=100`);
    const item = items.data.find((it) => it.stream_id === id);
    assert.ok(item, `no stored message of stream ${id} in ${conv}`);
    if (item.status !== 'in_progress') return { content: item.content.map((p) => p.text).join(''), status: item.status, item };
    assert.ok(Date.now() < deadline, `the stored answer of ${id} stayed in_progress`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What the renderer makes of text: the page's own markdown.js, in a detached box. */
export function rendered(page, text) {
  return page.evaluate(async (t) => {
    const { render } = await import('/assets/js/markdown.js');
    const box = document.createElement('div');
    box.className = 'md';
    document.querySelector('.messages').append(box);
    render(box, t);
    const out = box.innerText;
    box.remove();
    return out;
  }, text);
}
