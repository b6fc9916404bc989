// @sluice-dev/client in headless Chromium: the very files the chat page
// imports (/assets/js/sluice/, embedded from clients/js), reading chats and
// a topic through a proxy that cuts every event stream at random points;
// and examples/topic.html, served from another origin as its README says.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { repoRoot, startSluice, useSluice } from './server.js';
import { startCutProxy } from './cut-proxy.js';
import { openSSE, postJSON } from './sse.js';
import { storedAnswer } from './browser.js';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T = { timeout: 60_000 };

const sluice = useSluice(['--demo-tps', '400', '--demo-ttft', '0s']);
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'],
  });
}, { timeout: 60_000 });

after(() => browser?.close(), { timeout: 30_000 });

/** A page at origin, on an empty document that Playwright serves; it reaches origin for everything else. */
async function blankPage(origin) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err.message));
  await page.route(origin + '/test-blank', (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>client</title>' }));
  await page.goto(origin + '/test-blank');
  return { page, close: () => context.close() };
}

async function uninterrupted(url, limit = Infinity) {
  const r = await openSSE(url);
  const events = limit === Infinity ? await r.readToEnd() : await r.take(limit);
  r.abort();
  return events;
}

test('in Chromium, chats and a topic read through a cutting proxy are the uninterrupted transcripts', T, async () => {
  const proxy = await startCutProxy(sluice.url, { seed: 23, maxBytes: 16384 });
  const { page, close } = await blankPage(proxy.url);
  try {
    const chats = await page.evaluate(async () => {
      const { SluiceClient } = await import('/assets/js/sluice/index.js');
      const client = new SluiceClient({ retry: { initialDelay: 1, maxDelay: 20 } });
      return Promise.all(Array.from({ length: 3 }, async (_, i) => {
        const seen = [];
        const stream = client.chat({ model: 'demo', messages: [{ role: 'user', content: `browser chat ${i}` }] }, {
          onChunk: (chunk, s) => seen.push({ id: s.lastEventId, chunk }),
        });
        const r = await stream.done;
        return { id: stream.id, status: r.status, error: r.error?.message, text: r.text, seen };
      }));
    });
    for (const [i, c] of chats.entries()) {
      assert.equal(c.status, 'done', `chat ${i}: ${c.error}`);
      const want = await uninterrupted(`${sluice.url}/v1/streams/${c.id}`);
      assert.equal(want.pop().data, '[DONE]');
      assert.deepEqual(c.seen.map((s) => s.id), want.map((e) => e.id), `chat ${i}: event ids`);
      assert.deepEqual(c.seen.map((s) => s.chunk), want.map((e) => JSON.parse(e.data)), `chat ${i}: chunks`);
    }
    const chatCuts = proxy.cuts;
    assert.ok(chatCuts >= chats.length, `only ${chatCuts} cuts: resuming was not tested`);

    const count = 100;
    const reading = page.evaluate(async (count) => {
      const { SluiceClient } = await import('/assets/js/sluice/index.js');
      const client = new SluiceClient({ retry: { initialDelay: 1, maxDelay: 20 } });
      const got = [];
      for await (const ev of client.subscribe('browser-room', { from: 'start' })) {
        got.push(ev);
        if (got.length === count) break;
      }
      return got;
    }, count);
    for (let i = 0; i < count; i++) {
      const res = await postJSON(`${sluice.url}/v1/topics/browser-room/events`, { event: i % 10 ? undefined : 'tenth', data: { i, text: `événement ${i} `.repeat(20) } });
      assert.equal(res.status, 201);
    }
    const got = await reading;
    const want = await uninterrupted(`${sluice.url}/v1/topics/browser-room/events?from=start`, count);
    assert.deepEqual(got, want.map((e) => ({ id: e.id, event: e.event ?? 'message', data: e.data })));
    // 100 events of over 200 bytes outgrow any cut point: the topic was cut.
    assert.ok(proxy.cuts > chatCuts, 'the topic was never cut');
    assert.deepEqual(page.errors, []);
  } finally {
    await close();
    await proxy.close();
  }
});

test('the chat page streams an answer with the client it imports from /assets/js/sluice/', T, async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    const loaded = [];
    page.on('response', (r) => new URL(r.url()).pathname.startsWith('/assets/js/sluice/') && loaded.push(new URL(r.url()).pathname));
    await page.goto(sluice.url + '/');
    await page.waitForSelector('#app[data-ready]');
    await page.locator('#input').fill('Which client streams this?');
    await page.locator('#input').press('Enter');
    await page.waitForSelector('.msg.assistant:last-child[data-status="done"]');
    const id = await page.locator('.msg.assistant:last-child').getAttribute('data-stream-id');
    const saved = await storedAnswer(sluice, page, id);
    const events = await uninterrupted(`${sluice.url}/v1/streams/${id}`);
    assert.equal(events.pop().data, '[DONE]');
    assert.equal(saved.content, events.map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '').join(''), 'the server stored the answer the page streamed');
    assert.ok(loaded.includes('/assets/js/sluice/index.js') && loaded.includes('/assets/js/sluice/follow.js'), `loaded ${loaded}`);
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

/** Serves the repository's files, read only, at a loopback origin of its own; examples/topic.html aimed at target.url. */
async function serveRepository(target) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };
  const server = http.createServer(async (req, res) => {
    const file = path.join(repoRoot, decodeURIComponent(new URL(req.url, 'http://x').pathname));
    if (!file.startsWith(repoRoot + path.sep) || !types[path.extname(file)]) return void res.writeHead(404).end();
    try {
      let body = await readFile(file, 'utf8');
      if (file === path.join(repoRoot, 'examples', 'topic.html')) body = body.replaceAll('http://127.0.0.1:8080', target.url);
      res.writeHead(200, { 'Content-Type': types[path.extname(file)] }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

test('examples/topic.html, served from another origin, shows what is published to the topic', T, async () => {
  const target = {};
  const site = await serveRepository(target);
  let other;
  let context;
  try {
    // Sluice allows the page's origin, as the examples' README says.
    other = await startSluice({ args: ['--cors-origins', site.origin] });
    target.url = other.url;
    assert.equal((await postJSON(`${other.url}/v1/topics/room/events`, { data: 'before the page' })).status, 201);
    context = await browser.newContext();
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto(`${site.origin}/examples/topic.html`);
    await page.waitForFunction(() => document.querySelectorAll('#events li').length === 1);
    assert.equal((await postJSON(`${other.url}/v1/topics/room/events`, { data: 'after it opened' })).status, 201);
    await page.waitForFunction(() => document.querySelectorAll('#events li').length === 2);
    assert.deepEqual(await page.locator('#events li').allTextContents(), ['before the page', 'after it opened']);
    assert.deepEqual(errors, []);
  } finally {
    await context?.close();
    await other?.stop();
    await site.close();
  }
});
