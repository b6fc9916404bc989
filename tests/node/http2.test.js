// The oldest complaint about SSE, in real headless Chromium against the real
// sluice binary: over HTTP/1.1 a browser opens at most six connections to a
// host, and every EventSource holds one, so the seventh tab of /live waits
// for a connection and does not get what is published; over HTTPS Sluice
// speaks HTTP/2, every stream of the origin shares one connection, and all
// ten tabs get it. The server's own count of open streams (GET /metrics)
// shows the same: six, then ten.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { makeCert, startSluice } from './server.js';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T = { timeout: 120_000 };
const TABS = 10;

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
}, { timeout: 30_000 });

/** The value of one sample of sluice's metrics. */
async function metric(sluice, sample) {
  const { status, body } = await sluice.get('/metrics');
  assert.equal(status, 200);
  const line = body.split('\n').find((l) => l.startsWith(sample + ' '));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/** Polls the metric until it equals want (5 s at most). */
async function metricReaches(sluice, sample, want) {
  const deadline = Date.now() + 5000;
  let got;
  while ((got = await metric(sluice, sample)) !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(got, want, `${sample}`);
}

/** Opens /live in a new tab of context and waits until its EventSource is open. */
async function openLive(context, url) {
  const page = await context.newPage();
  await page.goto(url + '/live');
  await page.waitForSelector('#state[data-state="open"]', { timeout: 10_000 });
  return page;
}

/** Publishes text to the default topic, as /live's form does. */
async function publish(sluice, text) {
  const { request } = await import('./server.js');
  const res = await request(sluice.url + '/send-message', {
    method: 'POST', ca: sluice.ca, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message: text }),
  });
  assert.equal(res.status, 201, res.body);
}

const feedHas = (text) => (t) => [...document.querySelectorAll('#feed .text')].some((e) => e.textContent === t);

test('over HTTPS (HTTP/2), ten tabs of /live on one origin all receive a publish', T, async () => {
  const tls = await makeCert();
  const sluice = await startSluice({ tls });
  sluice.ca = tls.ca;
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    const pages = [];
    for (let i = 0; i < TABS; i++) pages.push(await openLive(context, sluice.url));
    const protocols = await Promise.all(pages.map((p) => p.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol)));
    assert.deepEqual(protocols, Array(TABS).fill('h2'), 'every tab spoke HTTP/2');
    // HTTP/2 streams are served in their handlers (the fallback path).
    await metricReaches(sluice, 'sluice_streams_open{kind="topic",transport="sse_fallback"}', TABS);

    await publish(sluice, 'to all ten');
    await Promise.all(pages.map((p) => p.waitForFunction(feedHas('to all ten'), 'to all ten', { timeout: 10_000 })));
  } finally {
    await context.close();
    await sluice.stop();
  }
});

test('over plain HTTP/1.1, the seventh tab of /live waits for a connection and misses the publish', T, async () => {
  const sluice = await startSluice();
  const context = await browser.newContext();
  try {
    const open = [];
    // Browsers speak HTTP/2 only over TLS: this is HTTP/1.1.
    for (let i = 0; i < 6; i++) open.push(await openLive(context, sluice.url));
    // Four more tabs: each waits for one of the six connections.
    const waiting = [];
    for (let i = 6; i < TABS; i++) {
      const page = await context.newPage();
      page.goto(sluice.url + '/live', { timeout: 0 }).catch(() => {}); // ends when the context closes
      waiting.push(page);
    }
    await metricReaches(sluice, 'sluice_streams_open{kind="topic",transport="sse"}', 6);

    await publish(sluice, 'to whoever is connected');
    await Promise.all(open.map((p) => p.waitForFunction(feedHas('to whoever is connected'), 'to whoever is connected', { timeout: 10_000 })));
    // The six have it; the seventh has not even loaded its page: its
    // navigation waits for a connection, and has not committed.
    for (const page of waiting) assert.equal(page.url(), 'about:blank');
    await metricReaches(sluice, 'sluice_streams_open{kind="topic",transport="sse"}', 6);

    // Closing one tab frees its connection: a waiting tab (whichever the
    // browser picks) loads, connects, and replays what it missed (/live
    // reads the topic from the start).
    await open[0].close();
    const next = await Promise.any(waiting.map((p) =>
      p.waitForSelector('#state[data-state="open"]', { timeout: 20_000 }).then(() => p)));
    await next.waitForFunction(feedHas('to whoever is connected'), 'to whoever is connected', { timeout: 10_000 });
    await metricReaches(sluice, 'sluice_streams_open{kind="topic",transport="sse"}', 6);
  } finally {
    // The server first: the navigations still waiting then fail at once,
    // where closing their tabs first waits on them for seconds.
    await sluice.stop();
    await context.close();
  }
});
