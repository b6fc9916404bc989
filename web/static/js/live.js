// live.js: the /live page, the broadcast demo that Sluice grew from. It
// reads the topic "default" with the browser's own EventSource, which
// reconnects by itself and sends Last-Event-ID so that nothing posted while
// it was away is missed, and posts with POST /send-message.

import { Store } from './store.js';

const $ = (id) => document.getElementById(id);
const feed = $('feed');
const state = $('state');
const form = $('form');
const input = $('message');
const send = $('send');
const scroller = $('scroller');
const empty = $('empty');
const sendError = $('send-error');

/** The API key the chat page keeps, for servers that need one. */
const key = new Store().apiKey;
const auth = key ? { Authorization: `Bearer ${key}` } : {};

/** The most messages kept on the page. */
const MAX = 500;
/** IDs of the events this page posted, to mark them "you". */
const mine = new Set();
const seen = new Set();

$('origin').textContent = location.origin;

function setState(s, text) {
  state.dataset.state = s;
  state.textContent = text;
}

function add(id, text) {
  if (id && seen.has(id)) return;
  if (id) seen.add(id);
  const near = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  const li = document.createElement('li');
  li.dataset.id = id;
  if (mine.has(id)) li.classList.add('mine');
  const time = document.createElement('time');
  const now = new Date();
  time.dateTime = now.toISOString();
  time.textContent = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text; // always text: anyone can post anything
  li.append(time, body);
  feed.append(li);
  while (feed.children.length > MAX) feed.firstElementChild.remove();
  empty.hidden = true;
  if (near) scroller.scrollTop = scroller.scrollHeight;
}

// ?from=start replays what the topic still keeps; on a reconnect the
// browser's Last-Event-ID header wins over it, so only what was missed comes.
const es = new EventSource('/events?from=start');
es.addEventListener('open', () => setState('open', 'Live'));
es.addEventListener('message', (e) => add(e.lastEventId, e.data));
es.addEventListener('error', () => {
  if (es.readyState === EventSource.CONNECTING) {
    setState('connecting', 'Reconnecting…');
    return;
  }
  // EventSource gave up: the answer was not an event stream. Find out why.
  setState('closed', 'Disconnected. Reload the page to try again.');
  const ac = new AbortController();
  fetch('/events', { signal: ac.signal })
    .then((r) => {
      ac.abort();
      if (r.status === 401) setState('closed', 'This server needs an API key to read the topic.');
    })
    .catch(() => {});
});

function resize() {
  input.style.height = 'auto';
  input.style.height = Math.min(input.scrollHeight, innerHeight * 0.3) + 'px';
  send.disabled = !input.value.trim();
}
input.addEventListener('input', resize);
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const message = input.value.trim();
  if (!message) return;
  send.disabled = true;
  try {
    const res = await fetch('/send-message', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...auth },
      body: JSON.stringify({ message }),
    });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error?.message || `HTTP ${res.status}`);
    mine.add(body.id);
    feed.querySelector(`li[data-id="${CSS.escape(body.id)}"]`)?.classList.add('mine');
    input.value = '';
    sendError.hidden = true;
  } catch (err) {
    sendError.textContent = `Not sent: ${err.message}`;
    sendError.hidden = false;
  } finally {
    resize();
    input.focus();
  }
});
input.focus();
