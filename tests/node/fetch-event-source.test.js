// The seeds' client, @microsoft/fetch-event-source, in headless Chromium
// against the real sluice binary. It dispatches a message for every blank
// line of the stream, data or not, so a retry: field or a heartbeat in a
// block of its own reaches the application as an empty message, and a plain
// JSON.parse(ev.data) throws. Sluice puts retry: in the block of the first
// event and sends heartbeats as comment lines with no blank line after
// them; these tests read a chat and a topic through heartbeats and check
// that every message the library hands over is one Sluice sent.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { useSluice } from './server.js';
import { postChat, postJSON } from './sse.js';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T = { timeout: 45_000 };
const LIB = path.join(path.dirname(fileURLToPath(import.meta.url)),
  'node_modules', '@microsoft', 'fetch-event-source', 'lib', 'esm');

// A model that thinks for a while before its first token, and heartbeats
// often enough for several to come in that time.
const sluice = useSluice(['--demo-ttft', '1200ms', '--demo-tps', '200', '--heartbeat', '150ms']);
let browser;
let page;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  page = await browser.newPage();
  // The library's ES modules, served from the page's own origin (its
  // Content-Security-Policy allows scripts from 'self' only).
  await page.route('**/test-lib/fes/*', async (route) => {
    let file = path.basename(new URL(route.request().url()).pathname);
    if (!file.endsWith('.js')) file += '.js'; // the library imports './fetch', as a bundler would resolve it
    route.fulfill({ contentType: 'text/javascript', body: await readFile(path.join(LIB, file)) });
  });
  await page.goto(sluice.url + '/live');
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
}, { timeout: 30_000 });

/**
 * Reads a stream in the page with fetchEventSource until the message
 * [DONE] (until 'done') or the first message (until 'first'), and returns
 * every message's data.
 */
function readInPage(url, init, until) {
  return page.evaluate(async ({ url, init, until }) => {
    const { fetchEventSource } = await import('/test-lib/fes/index.js');
    const datas = [];
    const ctrl = new AbortController();
    const isStop = (data) => until === 'first' || data === '[DONE]';
    await new Promise((resolve, reject) => {
      fetchEventSource(url, {
        ...init,
        signal: ctrl.signal,
        openWhenHidden: true,
        onmessage(ev) {
          datas.push(ev.data);
          if (isStop(ev.data)) {
            ctrl.abort();
            resolve();
          }
        },
        onclose() { reject(new Error(`the stream closed after ${datas.length} messages`)); },
        onerror(err) { reject(err); throw err; },
      }).catch(reject);
    });
    return datas;
  }, { url, init, until });
}

test('a chat through heartbeats: every message is a chunk Sluice sent, then [DONE]', T, async () => {
  const body = JSON.stringify({ model: 'demo', stream: true, messages: [{ role: 'user', content: 'think, then answer' }] });
  // The same request read raw: the stream really has heartbeats while the
  // model thinks, and retry: shares the first event's block.
  const raw = await postChat(sluice.url, [{ role: 'user', content: 'think, then answer' }]);
  await raw.readToEnd();
  assert.ok(raw.comments.filter((c) => c.trim() === 'ping').length >= 3, `heartbeats: ${raw.comments.length}`);
  assert.match(raw.raw, /^retry: \d+\nid: /, 'retry: is not in the first event\'s block');

  const datas = await readInPage('/v1/chat/completions',
    { method: 'POST', headers: { 'Content-Type': 'application/json' }, body },
    'done');
  assert.equal(datas.at(-1), '[DONE]');
  for (const d of datas.slice(0, -1)) {
    assert.notEqual(d, '', 'an empty message reached the application');
    assert.equal(JSON.parse(d).object, 'chat.completion.chunk');
  }
  assert.equal(datas.length, raw.events.length, 'messages in the browser and events on the wire differ');
});

test('a quiet topic: the first message is the one published, not an empty one', T, async () => {
  const reading = readInPage('/v1/topics/fes/events', {}, 'first');
  // Let the subscription sit through a few heartbeats, then publish.
  await new Promise((r) => setTimeout(r, 800));
  const res = await postJSON(sluice.url + '/v1/topics/fes/events', { data: { hello: 'world' } });
  assert.equal(res.status, 201);
  const datas = await reading;
  assert.deepEqual(datas.map((d) => JSON.parse(d)), [{ hello: 'world' }]);
});
