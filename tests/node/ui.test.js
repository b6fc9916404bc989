// The browser UI, driven in real headless Chromium (Debian's chromium, via
// playwright-core) against the real sluice binary. Each test proves one
// promise of the chat page or the /live page; the answer texts they compare
// come from the server's own log (GET /v1/streams/{id}), never from the UI.
//
// Connections are cut for real: pages that must lose their connection load
// through a TCP proxy in this file, which resets every socket on cut().
//
// UPDATE_SCREENSHOTS=1 also writes the screenshots in docs/.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { repoRoot, startSluice, useSluice } from './server.js';
import { openSSE, postJSON, textOf } from './sse.js';
import { rendered, storedAnswer } from './browser.js';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TPS = 60;
const T = { timeout: 45_000 };

const sluice = useSluice(['--demo-tps', String(TPS), '--demo-ttft', '150ms', '--retry', '300ms']);
let browser;
let shots; // where screenshots go
/** What a test opened (contexts, proxies, servers): closed after it, pass or fail. */
let cleanups = [];
afterEach(async () => {
  const todo = cleanups.reverse();
  cleanups = [];
  for (const fn of todo) await fn().catch(() => {});
});

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  shots = process.env.UPDATE_SCREENSHOTS ? path.join(repoRoot, 'docs') : await mkdtemp(path.join(os.tmpdir(), 'sluice-ui-'));
}, { timeout: 60_000 });

after(async () => {
  await browser?.close();
  if (shots && !process.env.UPDATE_SCREENSHOTS) await rm(shots, { recursive: true, force: true });
}, { timeout: 30_000 });

// ------------------------------------------------------------ helpers

/**
 * A TCP proxy to sluice. cut() resets every connection through it, as a
 * network failure would, mid-response; later connections go through.
 */
async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const pairs = new Set();
  let refusing = 0;
  const server = net.createServer((client) => {
    if (refusing > 0) {
      refusing--;
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(port), hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
    if (paused) upstream.pause();
  });
  let paused = false;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      const n = pairs.size;
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy();
        upstream.destroy();
      }
      pairs.clear();
      return n;
    },
    /** Resets the next n connections as soon as they are made. */
    refuse(n) {
      refusing = n;
    },
    /** Holds every response where it is, without closing anything. */
    pause() {
      paused = true;
      for (const { upstream } of pairs) upstream.pause();
    },
    resume() {
      paused = false;
      for (const { upstream } of pairs) upstream.resume();
    },
    close: () => new Promise((resolve) => {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      server.close(resolve);
    }),
  };
  cleanups.push(proxy.close);
  return proxy;
}

/** A fresh browser context (empty localStorage) with one page, errors collected. */
async function openPage(url, { viewport = { width: 1200, height: 800 }, colorScheme = 'light', path: p = '/' } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  cleanups.push(() => context.close());
  const page = await context.newPage();
  page.errors = [];
  page.dialogs = [];
  page.on('pageerror', (err) => page.errors.push(err.message));
  page.on('console', (m) => m.type() === 'error' && page.errors.push(m.text()));
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.requests = [];
  page.on('request', (r) => page.requests.push({ method: r.method(), url: r.url(), headers: r.headers() }));
  page.wsSent = []; // the messages the page sent over /ws, parsed
  page.sockets = []; // the URLs of the WebSockets it opened
  page.on('websocket', (ws) => {
    page.sockets.push(ws.url());
    ws.on('framesent', (f) => page.wsSent.push(JSON.parse(f.payload)));
  });
  await page.goto(url + p);
  if (p === '/' || p.startsWith('/?')) await page.waitForSelector('#app[data-ready]');
  return page;
}

/** Types text into the message box and presses Enter. */
async function send(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

const lastAnswer = '.msg.assistant:last-child';

/** The last answer: its status, stream ID and rendered text. */
function answer(page) {
  return page.evaluate((sel) => {
    const li = document.querySelector(sel);
    return li && { status: li.dataset.status, net: li.dataset.net, id: li.dataset.streamId, text: li.querySelector('.md').innerText };
  }, lastAnswer);
}

async function waitStatus(page, status, timeout = 30_000) {
  await page.waitForSelector(`${lastAnswer}[data-status="${status}"]`, { timeout });
}

async function waitText(page, minChars) {
  await page.waitForFunction(([sel, n]) => (document.querySelector(sel + ' .md')?.innerText.length ?? 0) >= n, [lastAnswer, minChars]);
}

/** The whole log of stream id, read from the start by a separate client. */
async function serverStream(id) {
  const r = await openSSE(`${sluice.url}/v1/streams/${id}`);
  assert.equal(r.status, 200, `GET /v1/streams/${id}`);
  const events = await r.readToEnd();
  const last = events.at(-1)?.data;
  return { events, last, text: textOf(last === '[DONE]' ? events : events.slice(0, -1)) };
}

/** Asserts that the UI ended with exactly the server's answer, source and rendering. */
async function assertSameAnswer(page, id) {
  const server = await serverStream(id);
  assert.equal(server.last, '[DONE]', 'the stream ended normally');
  const saved = await storedAnswer(sluice, page, id);
  assert.equal(saved.content, server.text, 'the answer the server stored is the answer in its log');
  assert.equal(saved.status, 'completed');
  assert.equal((await answer(page)).text, await rendered(page, server.text), 'the page shows the whole answer, nothing lost or doubled');
  return server;
}

// ------------------------------------------------------------ chat

test('an answer streams in: text grows over many observations, Markdown renders, Stop shows while generating', T, async () => {
  const page = await openPage(sluice.url);
  // Shift+Enter is a new line, Enter sends.
  await page.locator('#input').fill('Explain how the stream');
  await page.locator('#input').press('Shift+Enter');
  await page.locator('#input').pressSequentially('keeps going.');
  assert.equal(await page.locator('#input').inputValue(), 'Explain how the stream\nkeeps going.');
  // Record what the page shows at every change, from inside the page, so
  // that a slow machine cannot make the test miss a state.
  await page.evaluate(() => {
    window.seen = { lengths: [], waiting: false, stop: false };
    new MutationObserver(() => {
      const li = document.querySelector('.msg.assistant:last-child');
      if (!li) return;
      if (li.classList.contains('waiting')) window.seen.waiting = true;
      if (li.dataset.status === 'streaming') {
        if (!document.getElementById('stop').hidden) window.seen.stop = true;
        const n = li.querySelector('.md').innerText.length;
        if (n > 0 && window.seen.lengths.at(-1) !== n) window.seen.lengths.push(n);
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  await page.locator('#input').press('Enter');
  await waitStatus(page, 'done');
  const seen = await page.evaluate(() => window.seen);
  const growing = seen.lengths;
  assert.ok(growing.length >= 8, `the answer grew over only ${growing.length} observations: ${growing}`);
  for (let i = 1; i < growing.length; i++) assert.ok(growing[i] >= growing[i - 1], `the text shrank: ${growing}`);
  assert.ok(growing[0] < growing.at(-1) / 4, `the first text shown was already ${growing[0]} of ${growing.at(-1)} characters`);
  assert.ok(seen.stop, 'the Stop button showed while the answer streamed');
  assert.ok(seen.waiting, 'a thinking indicator showed before the first token');
  assert.equal((await answer(page)).status, 'done');
  assert.ok(await page.locator('#send').isVisible(), 'Send is back after the answer');
  assert.equal(await page.locator('.msg.user .bubble').innerText(), 'Explain how the stream\nkeeps going.');

  // The demo answer has every kind of Markdown a chat must render.
  const md = page.locator(`${lastAnswer} .md`);
  for (const sel of ['p', 'strong', 'em', ':not(pre) > code', 'a[href^="https://"]', '.code-block pre code', ':is(ul, ol) > li']) {
    assert.ok(await md.locator(sel).count() > 0, `no ${sel} in the answer`);
  }
  assert.equal(await md.locator('a').first().getAttribute('rel'), 'noopener noreferrer nofollow');
  await assertSameAnswer(page, (await answer(page)).id);
  assert.deepEqual(page.errors, []);
});

test('Stop cancels the generation on the server and keeps what arrived', T, async () => {
  const page = await openPage(sluice.url);
  await send(page, 'Please give me a long answer');
  await waitText(page, 150);
  const { id } = await answer(page);
  await page.locator('#stop').click();
  await waitStatus(page, 'stopped');
  assert.ok(page.requests.some((r) => r.method === 'POST' && r.url.endsWith(`/v1/streams/${id}/cancel`)), 'POST /v1/streams/{id}/cancel was sent');
  assert.match(await page.locator(`${lastAnswer} .msg-status`).innerText(), /Stopped/);

  // The server's log of the generation ends with the cancelled error, and
  // what the page kept is exactly what the server generated.
  const server = await serverStream(id);
  assert.equal(JSON.parse(server.last).error.code, 'cancelled', server.last);
  const saved = await storedAnswer(sluice, page, id);
  assert.equal(saved.content, server.text);
  assert.equal(saved.status, 'cancelled');
  assert.ok(server.text.length < 4000, `a long answer was not cut short (${server.text.length} chars)`);
  const shown = (await answer(page)).text;
  await page.waitForTimeout(400);
  assert.equal((await answer(page)).text, shown, 'no text arrived after Stop');
  assert.ok(await page.locator(`${lastAnswer} [data-action="regenerate"]`).isVisible(), 'the stopped answer can be regenerated');
  assert.deepEqual(page.errors, []);
});

// The page at /?transport=ws streams over /ws (ws-client.js): the resume
// tests run over both transports, and prove the same promises.
const transports = [
  { name: 'sse', path: '/' },
  { name: 'ws', path: '/?transport=ws' },
];

/**
 * How the page resumed stream id: the last event ID it resumed after, and
 * how many times it tried. Over SSE a GET /v1/streams/{id} with
 * Last-Event-ID; over /ws a stream.attach with last_event_id.
 */
function resumesOf(page, transport, id) {
  if (transport === 'ws') {
    const attaches = page.wsSent.filter((m) => m.type === 'stream.attach' && m.stream === id);
    return { tries: attaches.length, lastId: attaches.at(-1)?.last_event_id };
  }
  const gets = page.requests.filter((r) => r.method === 'GET' && r.url.endsWith(`/v1/streams/${id}`));
  return { tries: gets.length, lastId: gets.at(-1)?.headers['last-event-id'] };
}

for (const { name: transport, path: p } of transports) {
  test(`[${transport}] a connection cut mid-answer reconnects after the last event seen and ends with the identical text`, T, async () => {
    const proxy = await startProxy(sluice.url);
    const page = await openPage(proxy.url, { path: p });
    // Record the states the answer goes through.
    await page.evaluate(() => {
      window.netStates = [];
      new MutationObserver(() => {
        const n = document.querySelector('.msg.assistant:last-child')?.dataset.net;
        if (n && window.netStates.at(-1) !== n) window.netStates.push(n);
      }).observe(document.getElementById('messages'), { attributes: true, subtree: true, attributeFilter: ['data-net'] });
    });
    // The first reconnect attempt fails too, so that backoff is exercised.
    let resumes = 0;
    if (transport === 'sse') {
      await page.route('**/v1/streams/*', (route) => (++resumes === 1 ? route.abort('connectionreset') : route.continue()));
    }

    await send(page, 'What happens when my network drops?');
    // Early in the answer: on a loaded machine the text shown trails what
    // has arrived, and the cut must come before the end has.
    await waitText(page, 80);
    const before = (await answer(page)).text.length;
    const opened = page.sockets.length;
    if (transport === 'ws') {
      // The next connection, the first reconnect, is reset. The page's
      // change feed also reconnects after the cut: kept off the network,
      // it cannot be the connection reset.
      await page.route('**/v1/conversations/events', (route) => route.abort());
      proxy.refuse(1);
    }
    assert.ok(proxy.cut() > 0, 'no connection to cut');
    await waitStatus(page, 'done');

    const { id } = await answer(page);
    const { tries, lastId } = resumesOf(page, transport, id);
    if (transport === 'sse') {
      assert.ok(tries >= 2, `expected a failed and a successful resume, got ${tries}`);
    } else {
      assert.ok(page.sockets.length >= opened + 2, `expected a refused and a successful connection, got ${page.sockets.length - opened}`);
      assert.ok(tries >= 1, 'the page sent stream.attach');
    }
    assert.match(lastId ?? '', /\S/, 'the resume named the last event seen');
    const server = await assertSameAnswer(page, id);
    assert.ok(before < server.text.length, 'the cut came before the end');
    // Resumed after the last event seen before the cut: not from the start.
    assert.ok(server.events.findIndex((e) => e.id === lastId) > 0, `the last event ID ${lastId} is an event of the stream`);
    const states = await page.evaluate(() => window.netStates);
    assert.ok(states.includes('reconnecting') && states.includes('resumed'), `the page showed ${states}`);
  });

  test(`[${transport}] a reload mid-answer reattaches to the running generation and shows the whole answer`, T, async () => {
    const page = await openPage(sluice.url, { path: p });
    await send(page, 'Tell me about reloading pages');
    await waitText(page, 150);
    const { id } = await answer(page);
    const partial = (await answer(page)).text.length;
    await page.reload();
    await page.waitForSelector('#app[data-ready]');
    assert.equal(await page.evaluate(() => document.getElementById('app').dataset.transport), transport);
    // The same conversation is shown, and its answer goes on.
    assert.equal((await answer(page)).id, id);
    await waitStatus(page, 'done');
    const { tries, lastId } = resumesOf(page, transport, id);
    assert.equal(tries, 1, 'one reattach after the reload');
    assert.match(lastId ?? '', /\S/, 'it resumed after the saved event, not from the start');
    const server = await assertSameAnswer(page, id);
    assert.ok(partial < server.text.length);
    assert.equal(await page.locator('.conv-link[aria-current="page"]').count(), 1, 'the chat is listed and current');
    assert.deepEqual(page.errors, []);
  });
}

test('model text with <script>, <img onerror> and javascript: links stays inert', T, async () => {
  const page = await openPage(sluice.url);
  await page.evaluate(() => {
    window.pwned = 0;
  });
  // The demo model quotes the start of the message, so these come back in
  // the model's own answer; "short" keeps the answers short.
  const payloads = [
    '<img src=x onerror=window.pwned++> short',
    '<script>window.pwned++</script> short',
    '[click me](javascript:window.pwned++) short',
    '<svg/onload=window.pwned++> short',
  ];
  for (const p of payloads) {
    await send(page, p);
    await waitStatus(page, 'done');
    const quoted = p.replace(' short', '');
    assert.ok((await answer(page)).text.includes(quoted), `the answer shows ${quoted} as text: ${(await answer(page)).text}`);
    assert.ok(await page.locator('.msg.user .bubble', { hasText: quoted }).count() === 1, 'the message shows as typed');
  }
  const dom = await page.evaluate(() => {
    const m = document.getElementById('messages');
    return {
      img: m.querySelectorAll('img').length,
      script: m.querySelectorAll('script').length,
      svgOutsideButtons: [...m.querySelectorAll('svg')].filter((s) => !s.closest('button, .avatar')).length,
      hrefs: [...m.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      onAttrs: [...m.querySelectorAll('*')].flatMap((e) => [...e.attributes].map((a) => a.name)).filter((n) => n.startsWith('on')),
    };
  });
  assert.deepEqual(dom, { img: 0, script: 0, svgOutsideButtons: 0, hrefs: [], onAttrs: [] });

  // The renderer itself, fed payloads whole and token by token (streaming).
  const result = await page.evaluate(async () => {
    const { render } = await import('/assets/js/markdown.js');
    const payloads = [
      '<script>window.pwned++</script>',
      '<img src=x onerror="window.pwned++">',
      '<iframe src="javascript:window.pwned++"></iframe>',
      '<a href="javascript:window.pwned++">a</a>',
      '[a](javascript:window.pwned++) [b](JaVaScRiPt:window.pwned++) [c]( javascript:window.pwned++ )',
      '[d](java\tscript:window.pwned++) [e](data:text/html,<script>1</script>) [f](vbscript:msgbox(1))',
      '<javascript:window.pwned++> ![g](javascript:window.pwned++) ![h](https://example.com/x.png)',
      '[i](https://example.com/ok) <mailto:someone@example.com> https://example.com/bare',
      '```html\n<img src=x onerror=window.pwned++>\n```',
      '**<img src=x onerror=window.pwned++>** `<script>window.pwned++</script>`',
    ];
    const box = document.createElement('div');
    document.body.append(box);
    const out = { img: 0, script: 0, iframe: 0, hrefs: new Set(), on: 0, text: '' };
    const check = () => {
      out.img += box.querySelectorAll('img').length;
      out.script += box.querySelectorAll('script').length;
      out.iframe += box.querySelectorAll('iframe').length;
      for (const a of box.querySelectorAll('a')) out.hrefs.add(a.getAttribute('href'));
      for (const e of box.querySelectorAll('*')) for (const a of e.attributes) if (a.name.startsWith('on')) out.on++;
    };
    for (const p of payloads) {
      for (let i = 1; i <= p.length; i += 3) {
        render(box, p.slice(0, i), { streaming: true });
        check();
      }
      render(box, p);
      check();
      out.text += box.innerText + '\n';
    }
    await new Promise((r) => setTimeout(r, 200)); // time for an onerror to fire
    box.remove();
    return { ...out, hrefs: [...out.hrefs] };
  });
  assert.equal(result.img + result.script + result.iframe + result.on, 0, JSON.stringify(result));
  for (const h of result.hrefs) assert.match(h, /^(https:|mailto:)/, `a link to ${h}`);
  assert.ok(result.hrefs.includes('https://example.com/ok') && result.hrefs.includes('mailto:someone@example.com'));
  assert.match(result.text, /<script>window\.pwned\+\+<\/script>/, 'HTML shows as text');
  assert.match(result.text, /\[a\]\(javascript:window\.pwned\+\+\)/, 'a javascript: link shows as its source text');
  assert.equal(await page.evaluate(() => window.pwned), 0, 'no payload ran');
  assert.deepEqual(page.dialogs, []);
});

test('conversations: multi-turn history kept by the server, sidebar switch, regenerate as a sibling, model list', T, async () => {
  const page = await openPage(sluice.url);
  assert.deepEqual(await page.locator('#model option').allInnerTexts(), ['demo']);
  const bodies = [];
  page.on('request', (r) => r.url().endsWith('/v1/chat/completions') && bodies.push(JSON.parse(r.postData())));

  await send(page, 'First question, short');
  await waitStatus(page, 'done');
  await send(page, 'Second question, short');
  await waitStatus(page, 'done');
  // The server holds the history: a request carries only what is new.
  const conv = new URL(page.url()).hash.replace('#/c/', '');
  assert.match(conv, /^conv_/);
  assert.equal(bodies[1].conversation, conv);
  assert.deepEqual(bodies[1].messages, [{ role: 'user', content: 'Second question, short' }]);
  assert.match(bodies[1].parent_id, /^msg_/, 'the new question goes under the answer shown');
  assert.equal(bodies[1].model, 'demo');
  const first = page.url();

  // Regenerate: the last answer again, with another seed, as a sibling.
  const before = (await answer(page)).text;
  await page.locator(`${lastAnswer} [data-action="regenerate"]`).click();
  await waitStatus(page, 'done');
  assert.equal(bodies.length, 3);
  assert.deepEqual(bodies[2].messages, []);
  assert.equal(typeof bodies[2].seed, 'number');
  assert.equal(await page.locator('.msg').count(), 4, 'the regenerated answer shows in place of the old one');
  await page.locator(`${lastAnswer} .branch-pos`, { hasText: '2/2' }).waitFor();
  assert.ok((await answer(page)).text.length > 0 && before.length > 0);

  // A second conversation, then back to the first from the sidebar.
  await page.keyboard.press('Control+Shift+O');
  await page.waitForSelector('#empty:not([hidden])');
  await send(page, 'Another chat, short');
  await waitStatus(page, 'done');
  // The server keeps every chat of this file's tests: the two are listed, the newest first
  // (once the sidebar has taken the change feed's news of the answer's end).
  await page.waitForFunction(() => document.querySelector('.conv-link .conv-title')?.textContent === 'Another chat, short',
    null, { timeout: 10000 }).catch(() => {});
  const listed = await page.locator('.conv-link .conv-title').allInnerTexts();
  assert.equal(listed[0], 'Another chat, short');
  assert.ok(listed.includes('First question, short'), listed.join(', '));
  await page.locator('.conv-link', { hasText: 'First question' }).click();
  await page.waitForFunction((u) => location.href === u, first);
  await page.waitForFunction(() => document.querySelectorAll('.msg').length === 4);
  assert.deepEqual(page.errors, []);
});

test('on a server with API keys, the page asks for a key once and sends it with every request', T, async () => {
  const key = 'ui-test-key-0123456789';
  const keyed = await startSluice({ args: ['--api-keys', key, '--demo-tps', '0'] });
  try {
    const context = await browser.newContext();
    cleanups.push(() => context.close());
    const page = await context.newPage();
    await page.goto(keyed.url + '/');
    await page.locator('#key-dialog[open]').waitFor();
    await page.locator('#key-input').fill(key);
    await page.locator('#key-input').press('Enter');
    await page.waitForSelector('#app[data-ready]');
    const auth = [];
    page.on('request', (r) => r.url().includes('/v1/') && auth.push(r.headers().authorization));
    await send(page, 'hello there, short');
    await waitStatus(page, 'done');
    assert.ok(auth.length > 0 && auth.every((a) => a === `Bearer ${key}`), `Authorization headers: ${auth}`);
  } finally {
    await keyed.stop();
  }
});

test('[ws] on a server with API keys, the page streams over /ws with the key in Sec-WebSocket-Protocol, never in a URL', T, async () => {
  const key = 'ui-test-key-ws-0123456789';
  const keyed = await startSluice({ args: ['--api-keys', key, '--demo-tps', '0', '--log-level', 'debug'] });
  try {
    const context = await browser.newContext();
    cleanups.push(() => context.close());
    const page = await context.newPage();
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    const handshakes = [];
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => handshakes.push(e.request.headers));
    await page.goto(keyed.url + '/?transport=ws');
    await page.locator('#key-dialog[open]').waitFor();
    await page.locator('#key-input').fill(key);
    await page.locator('#key-input').press('Enter');
    await page.waitForSelector('#app[data-ready]');
    await send(page, 'hello over a socket, short');
    await waitStatus(page, 'done');
    const b64 = Buffer.from(key).toString('base64url');
    assert.ok(sockets.length >= 1, 'the answer came over a WebSocket');
    for (const u of sockets) assert.ok(!u.includes(key) && !u.includes(b64), `the key is in the URL ${u}`);
    const protocols = handshakes.map((h) => h['Sec-WebSocket-Protocol'] ?? h['sec-websocket-protocol']);
    assert.deepEqual(protocols, [`sluice, sluice.key.${b64}`], 'the key went in Sec-WebSocket-Protocol');
    // The server took it (it refuses a connection without a key) and never wrote it down.
    assert.ok((await serverText(keyed, page, key)).length > 0);
    assert.ok(!keyed.logs().includes(key) && !keyed.logs().includes(b64), 'the key is in the server logs');
  } finally {
    await keyed.stop();
  }
});

/** The text of the page's last answer as the server kept it. */
async function serverText(server, page, key) {
  const { id } = await answer(page);
  const r = await openSSE(`${server.url}/v1/streams/${id}`, { headers: { Authorization: `Bearer ${key}` } });
  assert.equal(r.status, 200);
  return textOf((await r.readToEnd()).slice(0, -1));
}

test('screenshots of the chat mid-answer, light, dark and phone width', { timeout: 60_000 }, async () => {
  for (const [name, opts] of [
    ['chat.png', { viewport: { width: 1280, height: 800 } }],
    ['chat-dark.png', { viewport: { width: 1280, height: 800 }, colorScheme: 'dark' }],
    ['chat-phone.png', { viewport: { width: 390, height: 844 } }],
  ]) {
    const proxy = await startProxy(sluice.url);
    const page = await openPage(proxy.url, opts);
    await send(page, 'Hi! Say something short');
    await waitStatus(page, 'done');
    await send(page, 'How does Sluice resume a dropped stream?');
    // Mid-answer: hold the stream once its code block has begun.
    await page.waitForFunction((sel) => /\n.*\n/.test(document.querySelector(sel)?.innerText ?? ''), `${lastAnswer} .md .code-block code`);
    proxy.pause();
    await page.waitForTimeout(300);
    assert.equal((await answer(page)).status, 'streaming', `${name} is mid-answer`);
    await page.screenshot({ path: path.join(shots, name) });
    proxy.resume();
    await waitStatus(page, 'done');
    // No horizontal scrolling at any width.
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), `${name}: the page scrolls sideways`);
  }
});

// ------------------------------------------------------------ /live

test('/live delivers a message posted with curl to two open pages, and one posted from a page', T, async () => {
  const proxy = await startProxy(sluice.url);
  const a = await openPage(proxy.url, { path: '/live' });
  const b = await openPage(proxy.url, { path: '/live' });
  for (const p of [a, b]) await p.waitForSelector('#state[data-state="open"]');

  const text = `hello from curl ${Date.now()} <b>not bold</b>`;
  await promisify(execFile)('curl', ['-sS', '--fail', '-H', 'Content-Type: application/json',
    '-d', JSON.stringify({ message: text }), `${sluice.url}/send-message`]);
  for (const p of [a, b]) {
    await p.locator('#feed .text', { hasText: text }).waitFor();
    assert.equal(await p.locator('#feed b').count(), 0, 'messages show as text');
  }

  await a.locator('#message').fill('hello from page A');
  await a.locator('#message').press('Enter');
  await b.locator('#feed .text', { hasText: 'hello from page A' }).waitFor();
  await a.locator('#feed li.mine .text', { hasText: 'hello from page A' }).waitFor();

  // EventSource reconnects by itself after a cut, with Last-Event-ID, and
  // gets what was posted while it was away.
  proxy.cut();
  const missed = `posted during the cut ${Date.now()}`;
  assert.equal((await postJSON(`${sluice.url}/send-message`, { message: missed })).status, 201, 'POST /send-message');
  for (const p of [a, b]) {
    await p.locator('#feed .text', { hasText: missed }).waitFor({ timeout: 10_000 });
    assert.equal(await p.locator('#feed .text', { hasText: missed }).count(), 1, 'delivered once');
  }
  if (process.env.UPDATE_SCREENSHOTS) await a.screenshot({ path: path.join(shots, 'live.png') });
  assert.deepEqual([...a.errors, ...b.errors].filter((e) => !/ERR_CONNECTION|net::/.test(e)), []);
});

test('the UI routes leave the API alone: unknown paths get JSON 404s, pages carry a CSP', T, async () => {
  for (const p of ['/nope', '/v1/nope', '/live/x']) {
    const res = await fetch(sluice.url + p);
    assert.equal(res.status, 404, p);
    assert.match(res.headers.get('content-type'), /application\/json/, p);
  }
  const page = await fetch(sluice.url + '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-security-policy'), /script-src 'self'/);
  const js = await fetch(sluice.url + '/assets/js/sluice/index.js');
  assert.match(js.headers.get('content-type'), /javascript/);
  const etag = js.headers.get('etag');
  assert.equal((await fetch(sluice.url + '/assets/js/sluice/index.js', { headers: { 'If-None-Match': etag } })).status, 304);
});

test('the browser enforces the CSP: inline script and other origins are blocked', T, async () => {
  const page = await openPage(sluice.url);
  const result = await page.evaluate(async () => {
    const violations = [];
    document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective));
    window.__ran = false;
    const s = document.createElement('script');
    s.textContent = 'window.__ran = true';
    document.body.append(s);
    const img = document.createElement('img');
    img.src = 'https://example.invalid/pixel.png';
    document.body.append(img);
    let fetched = 'no';
    try {
      await fetch('https://example.invalid/x');
      fetched = 'yes';
    } catch {
      fetched = 'blocked';
    }
    await new Promise((r) => setTimeout(r, 100));
    return { ran: window.__ran, violations, fetched };
  });
  assert.equal(result.ran, false, 'an inline script ran');
  assert.equal(result.fetched, 'blocked');
  for (const d of ['script-src', 'img-src', 'connect-src']) {
    assert.ok(result.violations.some((v) => v.startsWith(d)), `no ${d} violation in ${result.violations}`);
  }
  // The page itself made no request to another origin.
  const own = new URL(sluice.url).origin;
  assert.deepEqual(page.requests.filter((r) => !r.url.startsWith(own) && !r.url.startsWith('https://example.invalid')), []);
});
