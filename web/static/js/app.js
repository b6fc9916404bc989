// app.js: the chat page. It holds the page's state (the conversation shown,
// the answers streaming) and draws it; streaming is the client's job
// (@sluice-dev/client, from clients/js, served under ./sluice/; or, with
// ?transport=ws in the page's URL, ws-client.js's: the same streams over
// /ws), Markdown is markdown.js's and keeping conversations is store.js's.
//
// Every answer that streams is a "live" record, keyed by conversation, that
// lives on when another conversation is shown. Its text and last event ID
// are saved together, a few times a second and when the page goes away, so
// that a reload resumes the stream right after the text already saved.

import { SluiceClient } from './sluice/index.js';
import { SluiceWSClient } from './ws-client.js';
import { render } from './markdown.js';
import { Store, titleOf } from './store.js';

const SVG = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);
const ui = {
  app: $('app'), scrim: $('scrim'), menu: $('menu'), sidebarClose: $('sidebar-close'),
  newChat: $('new-chat'), newChatTop: $('new-chat-top'), list: $('conversations'), noChats: $('no-chats'),
  main: $('main'), model: $('model'), net: $('net'), scroller: $('scroller'), empty: $('empty'),
  messages: $('messages'), jump: $('jump'), composer: $('composer'), input: $('input'), send: $('send'),
  stop: $('stop'), toast: $('toast'), announcer: $('announcer'), keyButton: $('key-button'),
  keyDialog: $('key-dialog'), keyForm: $('key-form'), keyInput: $('key-input'), keyReason: $('key-reason'),
};

const store = new Store();
/** 'sse' (the default) or 'ws': how answers stream, chosen by ?transport=. */
const transport = new URLSearchParams(location.search).get('transport') === 'ws' ? 'ws' : 'sse';
const client = transport === 'ws' ? new SluiceWSClient() : new SluiceClient();
ui.app.dataset.transport = transport;
useKey(store.apiKey);
/** Answers streaming now, by conversation ID. */
const live = new Map();
/** The conversation shown; null for a new chat not yet sent. */
let conv = null;
/** The element of each message shown. */
let views = new Map();
/** Whether the view follows the end of the conversation as it grows. */
let stick = true;
/** Set while the page unloads: streams cut then must not be saved as failed. */
let leaving = false;

// ------------------------------------------------------------ DOM helpers

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  e.append(...children);
  return e;
}

function icon(name, cls) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('aria-hidden', 'true');
  if (cls) svg.setAttribute('class', cls);
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', '#i-' + name);
  svg.append(use);
  return svg;
}

function announce(text) {
  ui.announcer.textContent = '';
  setTimeout(() => (ui.announcer.textContent = text), 50);
}

let toastTimer = 0;
function toast(text, action, onAction) {
  clearTimeout(toastTimer);
  ui.toast.textContent = '';
  ui.toast.append(el('span', { text }));
  if (action) {
    const b = el('button', { type: 'button', class: 'toast-action', text: action });
    b.addEventListener('click', () => {
      ui.toast.hidden = true;
      onAction();
    });
    ui.toast.append(b);
  }
  ui.toast.hidden = false;
  toastTimer = setTimeout(() => (ui.toast.hidden = true), action ? 8000 : 3000);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API outside secure contexts: select and copy instead.
    const ta = el('textarea', { class: 'clip', readonly: true });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

// ------------------------------------------------------------ saving

function persist(c) {
  if (c.deleted || !c.messages.length) return;
  if (!store.save(c)) toast('This browser refused to save the chat (storage full?).');
}

/** Copies a live answer's text and last event ID into its message, together. */
function snapshot(l) {
  l.msg.content = l.stream.text;
  l.msg.lastEventId = l.stream.lastEventId;
  if (l.stream.id) l.msg.streamId = l.stream.id;
}

function saveSoon(l) {
  if (l.saveTimer) return;
  l.saveTimer = setTimeout(() => {
    l.saveTimer = 0;
    snapshot(l);
    persist(l.conv);
  }, 400);
}

addEventListener('pagehide', () => {
  leaving = true;
  for (const l of live.values()) {
    snapshot(l);
    persist(l.conv);
  }
});
addEventListener('pageshow', () => (leaving = false));

// ------------------------------------------------------------ streaming

/** Starts an answer to the conversation as it stands. */
function startAnswer(c, { seed } = {}) {
  const history = c.messages
    .filter((m) => m.content && (m.role === 'user' || m.role === 'assistant'))
    .map(({ role, content }) => ({ role, content }));
  const msg = { role: 'assistant', content: '', status: 'streaming', streamId: null, lastEventId: '' };
  c.messages.push(msg);
  c.updatedAt = Date.now();
  persist(c);
  if (c === conv) showMessage(msg);
  const body = { model: c.model, messages: history };
  if (seed != null) body.seed = seed;
  follow(c, msg, (handlers) => client.chat(body, handlers));
  announce('Sluice is answering.');
}

/** Follows a streaming answer: open(handlers) returns its ChatStream. */
function follow(c, msg, open, { reattached = false } = {}) {
  const l = { conv: c, msg, stream: null, frame: 0, saveTimer: 0, net: '', netInfo: null, reattached, netTimer: 0 };
  live.set(c.id, l);
  l.stream = open({
    text: msg.content,
    onOpen: () => {
      snapshot(l);
      persist(c);
      if (c === conv) views.get(msg)?.setAttribute('data-stream-id', msg.streamId);
    },
    onDelta: () => scheduleRender(l),
    onChunk: () => saveSoon(l),
    onState: (state, info) => netState(l, state, info),
  });
  l.stream.done.then((r) => finished(l, r));
  refresh();
}

function scheduleRender(l) {
  if (l.frame) return;
  l.frame = 1;
  const run = () => {
    if (!l.frame) return;
    l.frame = 0;
    snapshot(l);
    if (l.conv === conv) drawMessage(l.msg);
    saveSoon(l);
  };
  // requestAnimationFrame pauses in hidden tabs; the timer does not.
  requestAnimationFrame(run);
  setTimeout(run, 150);
}

function netState(l, state, info) {
  clearTimeout(l.netTimer);
  if (state === 'reconnecting') {
    l.net = 'reconnecting';
    l.netInfo = info;
    announce('Connection lost. Reconnecting.');
  } else if (state === 'resumed') {
    l.net = 'resumed';
    l.netInfo = info;
    announce(l.reattached ? 'Reattached to the answer.' : 'Reconnected. The answer continues.');
    l.netTimer = setTimeout(() => {
      if (l.net === 'resumed') {
        l.net = '';
        drawStatus(l.msg);
        drawNet();
      }
    }, 4000);
  } else if (state === 'open') {
    l.net = '';
  }
  drawStatus(l.msg);
  drawNet();
}

const statusOf = { done: 'done', cancelled: 'stopped', error: 'error', expired: 'expired', failed: 'interrupted' };

function finished(l, r) {
  clearTimeout(l.saveTimer);
  clearTimeout(l.netTimer);
  l.frame = 0;
  if (live.get(l.conv.id) === l) live.delete(l.conv.id);
  if (r.status === 'aborted' || leaving) return;
  const m = l.msg;
  snapshot(l);
  m.status = statusOf[r.status] ?? 'error';
  if (r.finishReason) m.finishReason = r.finishReason;
  if (r.error) m.error = r.error.message;
  else delete m.error;
  l.conv.updatedAt = Date.now();
  persist(l.conv);
  if (l.conv === conv) drawMessage(m);
  refresh();
  if (r.error?.status === 401 && l.conv === conv) {
    askKey(r.error.message).then((ok) => ok && retry(m));
    return;
  }
  announce({ done: 'Answer complete.', stopped: 'Stopped.', expired: 'The answer expired.' }[m.status] ?? 'The answer failed.');
}

/** Resumes every answer that was streaming when the page was last left. */
function reattachAll() {
  for (const e of store.list()) {
    if (!e.live || live.has(e.id)) continue;
    const c = store.get(e.id);
    if (c) reattach(c);
  }
}

function reattach(c, { otherTab = false } = {}) {
  const m = c.messages.at(-1);
  if (m?.role !== 'assistant' || m.status !== 'streaming' || live.has(c.id)) return;
  if (!m.streamId) {
    if (otherTab) return; // that tab is still waiting for the stream to start

    m.status = 'error';
    m.error = 'The page closed before the answer started.';
    persist(c);
    return;
  }
  follow(c, m, (h) => client.attach(m.streamId, m.lastEventId || '', h), { reattached: true });
}

// ------------------------------------------------------------ messages

function showMessage(m) {
  ui.empty.hidden = true;
  const li = messageEl(m);
  ui.messages.append(li);
  drawActions();
  return li;
}

function messageEl(m) {
  let li;
  if (m.role === 'user') {
    // Shown as text, exactly as typed: never parsed, never HTML.
    li = el('li', { class: 'msg user' }, el('h2', { class: 'visually-hidden', text: 'You said:' }), el('div', { class: 'bubble', text: m.content }));
  } else {
    li = el('li', { class: 'msg assistant' },
      el('div', { class: 'avatar' }, icon('logo', 'logo')),
      el('div', { class: 'body' },
        el('h2', { class: 'visually-hidden', text: 'Sluice said:' }),
        el('div', { class: 'thinking', 'aria-hidden': 'true' }, el('span'), el('span'), el('span')),
        el('div', { class: 'md' }),
        el('div', { class: 'msg-status' }),
        el('div', { class: 'actions' })));
  }
  views.set(m, li);
  if (m.role === 'assistant') drawMessage(m);
  return li;
}

/** Redraws an answer's text and status. */
function drawMessage(m) {
  const li = views.get(m);
  if (!li) return;
  const streaming = m.status === 'streaming';
  li.dataset.status = m.status;
  if (m.streamId) li.dataset.streamId = m.streamId;
  li.classList.toggle('waiting', streaming && !m.content);
  li.setAttribute('aria-busy', String(streaming));
  render(li.querySelector('.md'), m.content, { streaming });
  drawStatus(m);
  if (stick) scrollToEnd();
}

function drawStatus(m) {
  const li = views.get(m);
  if (!li) return;
  const l = live.get(conv?.id);
  const net = l?.msg === m ? l.net : '';
  li.dataset.net = net;
  const box = li.querySelector('.msg-status');
  box.textContent = '';
  box.className = 'msg-status';
  let text = '';
  let kind = 'muted';
  let action = null;
  if (net === 'reconnecting') {
    const n = l.netInfo?.attempt ?? 1;
    text = `Connection lost. Reconnecting${n > 1 ? ` (attempt ${n})` : ''}…`;
    kind = 'warn';
  } else if (net === 'resumed') {
    text = l.reattached ? 'Reattached to the answer in progress.' : 'Reconnected: the answer continues where it stopped.';
    kind = 'ok';
  } else if (m.status === 'stopped') {
    text = 'Stopped.';
  } else if (m.status === 'error') {
    text = m.error || 'Something went wrong.';
    kind = 'error';
    action = ['Retry', 'retry'];
  } else if (m.status === 'expired') {
    text = m.error || 'The rest of this answer is no longer kept on the server.';
    kind = 'warn';
  } else if (m.status === 'interrupted') {
    text = (m.error || 'The connection was lost.') + ' The answer may have gone on without you.';
    kind = 'error';
    action = ['Reconnect', 'reconnect'];
  } else if (m.status === 'done' && m.finishReason === 'length') {
    text = 'The answer reached its length limit.';
  }
  if (!text) return;
  box.classList.add('show', kind);
  box.append(el('span', { text }));
  if (action) box.append(el('button', { type: 'button', class: 'link-btn', 'data-action': action[1], text: action[0] }));
}

/** Puts Copy and Regenerate under the answers that are finished. */
function drawActions() {
  if (!conv) return;
  const last = conv.messages.at(-1);
  for (const m of conv.messages) {
    const li = views.get(m);
    if (!li || m.role !== 'assistant') continue;
    const box = li.querySelector('.actions');
    box.textContent = '';
    if (m.status === 'streaming') continue;
    if (m.content) {
      box.append(el('button', { type: 'button', class: 'act', 'data-action': 'copy', 'aria-label': 'Copy answer', title: 'Copy' }, icon('copy')));
    }
    if (m === last) {
      box.append(el('button', { type: 'button', class: 'act', 'data-action': 'regenerate', 'aria-label': 'Regenerate answer', title: 'Regenerate' }, icon('retry')));
    }
  }
}

function drawConversation() {
  ui.messages.textContent = '';
  views = new Map();
  const msgs = conv?.messages ?? [];
  ui.empty.hidden = msgs.length > 0;
  for (const m of msgs) ui.messages.append(messageEl(m));
  drawActions();
  document.title = conv ? `${conv.title} · Sluice` : 'Sluice';
  if (conv?.model && [...ui.model.options].some((o) => o.value === conv.model)) ui.model.value = conv.model;
  stick = true;
  scrollToEnd();
}

// ------------------------------------------------------------ page chrome

function drawNet() {
  const l = conv && live.get(conv.id);
  let text = '';
  let kind = '';
  if (navigator.onLine === false) [text, kind] = ['Offline', 'warn'];
  else if (l?.net === 'reconnecting') [text, kind] = ['Reconnecting…', 'warn'];
  else if (l?.net === 'resumed') [text, kind] = ['Resumed', 'ok'];
  ui.net.hidden = !text;
  ui.net.textContent = text;
  ui.net.className = 'net ' + kind;
}

function drawComposer() {
  const busy = !!(conv && live.has(conv.id));
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.send.disabled = !ui.input.value.trim();
  ui.composer.classList.toggle('busy', busy);
}

function dayGroup(t) {
  const d = new Date(t);
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  const days = Math.floor((today - new Date(d.getFullYear(), d.getMonth(), d.getDate())) / 864e5);
  if (days <= 0) return 'Today';
  if (days === 1) return 'Yesterday';
  if (days < 7) return 'Previous 7 days';
  if (days < 30) return 'Previous 30 days';
  return 'Older';
}

function drawSidebar() {
  const items = store.list();
  ui.list.textContent = '';
  let group = '';
  for (const e of items) {
    const g = dayGroup(e.updatedAt);
    if (g !== group) {
      group = g;
      ui.list.append(el('li', { class: 'conv-group', role: 'presentation', text: g }));
    }
    const active = conv?.id === e.id;
    const a = el('a', { class: 'conv-link', href: '#/c/' + e.id, 'aria-current': active ? 'page' : null },
      el('span', { class: 'conv-title', text: e.title }));
    if (live.has(e.id)) a.append(el('span', { class: 'conv-live', title: 'Answering' }, el('span', { class: 'visually-hidden', text: ' (answering)' })));
    const del = el('button', { type: 'button', class: 'conv-delete', 'data-id': e.id, 'aria-label': `Delete chat: ${e.title}`, title: 'Delete' }, icon('trash'));
    ui.list.append(el('li', { class: 'conv-item' + (active ? ' active' : '') }, a, del));
  }
  ui.noChats.hidden = items.length > 0;
}

function refresh() {
  drawSidebar();
  drawComposer();
  drawActions();
  drawNet();
}

function scrollToEnd() {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

ui.scroller.addEventListener('scroll', () => {
  const s = ui.scroller;
  stick = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  ui.jump.hidden = stick;
}, { passive: true });
ui.jump.addEventListener('click', () => {
  stick = true;
  ui.scroller.scrollTo({ top: ui.scroller.scrollHeight, behavior: 'smooth' });
  ui.input.focus();
});

// ------------------------------------------------------------ sidebar

const narrow = matchMedia('(max-width: 767px)');

function sidebarShown() {
  return narrow.matches ? ui.app.classList.contains('sidebar-open') : !ui.app.classList.contains('sidebar-collapsed');
}

function showSidebar(show, { focus = true } = {}) {
  if (narrow.matches) {
    ui.app.classList.toggle('sidebar-open', show);
    ui.scrim.hidden = !show;
    ui.main.inert = show;
    if (focus) (show ? ui.newChat : ui.menu).focus();
  } else {
    ui.app.classList.toggle('sidebar-collapsed', !show);
    store.sidebarCollapsed = !show;
  }
  ui.menu.setAttribute('aria-expanded', String(show));
  ui.menu.setAttribute('aria-label', show ? 'Hide chats' : 'Show chats');
}

ui.menu.addEventListener('click', () => showSidebar(!sidebarShown()));
ui.sidebarClose.addEventListener('click', () => showSidebar(false));
ui.scrim.addEventListener('click', () => showSidebar(false));
narrow.addEventListener('change', () => {
  ui.app.classList.remove('sidebar-open');
  ui.scrim.hidden = true;
  ui.main.inert = false;
  ui.app.classList.toggle('sidebar-collapsed', store.sidebarCollapsed);
  ui.menu.setAttribute('aria-expanded', String(sidebarShown()));
});

ui.list.addEventListener('click', (e) => {
  const del = e.target.closest('.conv-delete');
  if (del) {
    remove(del.dataset.id);
    return;
  }
  if (e.target.closest('.conv-link') && narrow.matches) showSidebar(false, { focus: false });
});

function remove(id) {
  const c = live.get(id)?.conv ?? store.get(id);
  if (!c) return;
  const next = ui.list.querySelector(`.conv-delete[data-id="${id}"]`)?.closest('li')?.nextElementSibling?.querySelector('.conv-link');
  c.deleted = true;
  live.get(id)?.stream.stop();
  store.remove(id);
  if (conv?.id === id) navigate(null);
  drawSidebar();
  const target = next && ui.list.querySelector(`.conv-link[href="${next.getAttribute('href')}"]`);
  (target ?? ui.newChat).focus();
  toast(`Deleted “${c.title}”.`, 'Undo', () => {
    delete c.deleted;
    store.save(c);
    drawSidebar();
  });
}

// ------------------------------------------------------------ routing

function route() {
  const m = /^#\/c\/([0-9a-f]{8,64})$/.exec(location.hash);
  const id = m ? m[1] : null;
  conv = id ? (live.get(id)?.conv ?? store.get(id)) : null;
  if (id && !conv) history.replaceState(null, '', location.pathname + location.search);
  if (conv && !live.has(conv.id)) reattach(conv);
  drawConversation();
  refresh();
}

function navigate(id) {
  history.pushState(null, '', id ? '#/c/' + id : location.pathname + location.search);
  route();
}

addEventListener('popstate', route);
addEventListener('hashchange', route);

function newChat() {
  navigate(null);
  if (narrow.matches) showSidebar(false, { focus: false });
  ui.input.focus();
}
ui.newChat.addEventListener('click', newChat);
ui.newChatTop.addEventListener('click', newChat);

store.onChange((id) => {
  // Another tab changed the chats: show it, and follow its answers too.
  drawSidebar();
  if (!id || id !== conv?.id || live.has(id)) return;
  const c = store.get(id);
  if (!c) {
    navigate(null);
    return;
  }
  conv = c;
  reattach(c, { otherTab: true });
  drawConversation();
  refresh();
});

// ------------------------------------------------------------ composer

function send(text) {
  text = text.trim();
  if (!text || (conv && live.has(conv.id))) return;
  if (!conv) {
    conv = store.create(ui.model.value);
    conv.title = titleOf(text);
    history.pushState(null, '', '#/c/' + conv.id);
    drawConversation();
  }
  conv.model = ui.model.value;
  const m = { role: 'user', content: text };
  conv.messages.push(m);
  showMessage(m);
  document.title = `${conv.title} · Sluice`;
  ui.input.value = '';
  autosize();
  stick = true;
  startAnswer(conv);
  scrollToEnd();
}

/** Asks for the last answer again, in place of m. */
function retry(m, { seed } = {}) {
  if (!conv || live.has(conv.id) || conv.messages.at(-1) !== m) return;
  conv.messages.pop();
  views.get(m)?.remove();
  views.delete(m);
  stick = true;
  // A regenerated answer gets another seed, so that it is another answer.
  startAnswer(conv, { seed });
}

function stop() {
  const l = conv && live.get(conv.id);
  if (!l) return;
  l.net = 'stopping';
  l.stream.stop();
}

function autosize() {
  const t = ui.input;
  t.style.height = 'auto';
  t.style.height = Math.min(t.scrollHeight, innerHeight * 0.4) + 'px';
  drawComposer();
}

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  send(ui.input.value);
});
ui.input.addEventListener('input', autosize);
ui.input.addEventListener('keydown', (e) => {
  // Enter sends; Shift+Enter is a new line; Enter that ends an IME
  // composition (Chinese, Japanese…) only ends the composition.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    send(ui.input.value);
  }
});
ui.stop.addEventListener('click', () => {
  stop();
  ui.input.focus();
});
ui.model.addEventListener('change', () => {
  store.model = ui.model.value;
  if (conv) {
    conv.model = ui.model.value;
    persist(conv);
  }
});

document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') {
    if (narrow.matches && sidebarShown()) showSidebar(false);
    else if (conv && live.has(conv.id)) {
      e.preventDefault();
      stop();
    }
  } else if ((e.ctrlKey || e.metaKey) && e.shiftKey && e.key.toLowerCase() === 'o') {
    e.preventDefault();
    newChat();
  }
});

document.querySelectorAll('.suggestion').forEach((b) => b.addEventListener('click', () => send(b.dataset.prompt)));

// Buttons inside the messages: copy code, copy an answer, regenerate, retry.
ui.messages.addEventListener('click', async (e) => {
  const copyCode = e.target.closest('.copy-code');
  if (copyCode) {
    const code = copyCode.closest('.code-block')?.querySelector('code')?.textContent ?? '';
    const label = copyCode.querySelector('span');
    if (await copyText(code)) {
      label.textContent = 'Copied';
      announce('Code copied.');
      setTimeout(() => (label.textContent = 'Copy'), 1500);
    }
    return;
  }
  const btn = e.target.closest('[data-action]');
  if (!btn || !conv) return;
  const li = btn.closest('.msg');
  const m = [...views].find(([, v]) => v === li)?.[0];
  if (!m) return;
  switch (btn.dataset.action) {
    case 'copy':
      if (await copyText(m.content)) {
        btn.replaceChildren(icon('check'));
        announce('Answer copied.');
        setTimeout(() => btn.replaceChildren(icon('copy')), 1500);
      }
      break;
    case 'regenerate':
      retry(m, { seed: crypto.getRandomValues(new Uint32Array(1))[0] });
      break;
    case 'retry':
      retry(m);
      break;
    case 'reconnect':
      m.status = 'streaming';
      delete m.error;
      drawMessage(m);
      reattach(conv);
      break;
  }
});

addEventListener('online', drawNet);
addEventListener('offline', drawNet);

// ------------------------------------------------------------ API key

function useKey(key) {
  client.headers = key ? { Authorization: `Bearer ${key}` } : {};
  ui.keyButton.hidden = !key;
}

let keyAsked = null;
/** Asks for an API key; resolves true once one is saved. */
function askKey(reason) {
  if (keyAsked) return keyAsked;
  ui.keyReason.textContent = (reason ? reason + ' ' : '') + 'The key is kept in this browser only.';
  ui.keyInput.value = store.apiKey;
  $('key-forget').hidden = !store.apiKey;
  ui.keyDialog.showModal();
  keyAsked = new Promise((resolve) => {
    ui.keyDialog.addEventListener('close', () => {
      keyAsked = null;
      resolve(ui.keyDialog.returnValue === 'save');
    }, { once: true });
  });
  return keyAsked;
}

ui.keyForm.addEventListener('submit', () => {
  store.apiKey = ui.keyInput.value.trim();
  useKey(store.apiKey);
});
$('key-cancel').addEventListener('click', () => ui.keyDialog.close('cancel'));
$('key-forget').addEventListener('click', () => {
  store.apiKey = '';
  useKey('');
  ui.keyDialog.close('forget');
});
ui.keyButton.addEventListener('click', () => askKey('').then((ok) => ok && loadModels()));

// ------------------------------------------------------------ start

async function loadModels() {
  try {
    const models = await client.models();
    if (!models.length) return;
    ui.model.textContent = '';
    for (const m of models) ui.model.append(el('option', { value: m.id, text: m.id }));
    const want = conv?.model ?? store.model;
    if (want && models.some((m) => m.id === want)) ui.model.value = want;
  } catch (err) {
    if (err.status === 401 && (await askKey(err.message))) return loadModels();
    toast('Could not load the list of models: ' + err.message);
  }
}

if (store.sidebarCollapsed && !narrow.matches) ui.app.classList.add('sidebar-collapsed');
ui.menu.setAttribute('aria-expanded', String(sidebarShown()));
reattachAll();
route();
autosize();
await loadModels();
ui.app.dataset.ready = 'true';
if (!narrow.matches) ui.input.focus();
