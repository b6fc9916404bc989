// app.js: the chat page. It holds the page's state (the conversation shown,
// the answers streaming) and draws it; streaming is the client's job
// (@sluice-dev/client, from clients/js, served under ./sluice/; or, with
// ?transport=ws in the page's URL, ws-client.js's: the same streams over
// /ws), Markdown is markdown.js's, the conversations' tree and where they
// are kept is chats.js's (on the server), the list of chats sidebar.js's,
// and what the browser keeps store.js's.
//
// Every answer that streams is a "live" record, keyed by conversation, that
// lives on when another conversation is shown. The server stores the
// answer as it streams; the page keeps only where it has got to (its text
// and last event ID, together, a few times a second and when the page goes
// away), so that a reload resumes the stream right after the text shown.
// Another tab or device attaches to a running answer from its start, and
// shows the stored text until the stream has caught up with it.

import { SluiceClient } from './sluice/index.js';
import { SluiceWSClient } from './ws-client.js';
import { render } from './markdown.js';
import { Store, titleOf } from './store.js';
import { Chat, MemoryChats, ServerChats, storedAncestor } from './chats.js';
import { Sidebar } from './sidebar.js';
import { el, icon } from './dom.js';

const $ = (id) => document.getElementById(id);
const ui = {
  app: $('app'), scrim: $('scrim'), menu: $('menu'), sidebarClose: $('sidebar-close'),
  newChat: $('new-chat'), newChatTop: $('new-chat-top'), list: $('conversations'), noChats: $('no-chats'),
  search: $('search'), more: $('more-chats'), importBox: $('import'), importText: $('import-text'),
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
/** Where conversations are kept: the server's, or the page's memory when the server keeps none. */
let source = new ServerChats(client);
/** The conversations loaded, by ID. */
const chats = new Map();
/** Answers streaming now, by conversation ID. */
const live = new Map();
/** The conversation shown; null for a new chat not yet sent. */
let conv = null;
/** The element of each message shown. */
let views = new Map();
/** Whether the view follows the end of the conversation as it grows. */
let stick = true;
/** Set while the page unloads: streams cut then must not be taken for failed. */
let leaving = false;

// ------------------------------------------------------------ small helpers

function announce(text) {
  ui.announcer.textContent = '';
  setTimeout(() => (ui.announcer.textContent = text), 50);
}

let toastTimer = 0;
function toast(text, action, onAction, ms) {
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
  toastTimer = setTimeout(() => (ui.toast.hidden = true), ms ?? (action ? 8000 : 3000));
}

/** Reports a failed call; a missing key is asked for. */
function failed(what, err) {
  if (err?.status === 401) {
    askKey(err.message).then((ok) => ok && start());
    return;
  }
  toast(`${what}: ${err?.message ?? err}`);
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

/**
 * Runs fn at most once at a time: calls made while it runs make it run
 * once more afterwards. Returns the promise of the run that covers the call.
 */
function coalesce(fn) {
  let running = null;
  let again = null;
  return function run() {
    if (!running) {
      running = fn().finally(() => (running = null));
      return running;
    }
    again ??= running.catch(() => {}).then(() => {
      again = null;
      return run();
    });
    return again;
  };
}

// ------------------------------------------------------------ positions

/** The text to show of a live answer: the stream's, or the stored text until the stream has caught up. */
function shownText(l) {
  return l.stream.text.length >= l.floor.length ? l.stream.text : l.floor;
}

/** Copies a live answer's text into its message, and notes where its stream has got to. */
function snapshot(l) {
  l.msg.content = shownText(l);
  if (l.stream.id) l.msg.streamId = l.stream.id;
}

function savePosition(l) {
  store.savePosition(l.stream.id, l.stream.text, l.stream.lastEventId);
}

function saveSoon(l) {
  if (l.saveTimer) return;
  l.saveTimer = setTimeout(() => {
    l.saveTimer = 0;
    savePosition(l);
  }, 400);
}

addEventListener('pagehide', () => {
  leaving = true;
  for (const l of live.values()) savePosition(l);
  sidebar.flushDeletes();
});
addEventListener('pageshow', () => (leaving = false));

// ------------------------------------------------------------ streaming

/**
 * Starts an answer to user, a user message of c: messages are the
 * request's new messages, stored under parentId; temps, the temporary
 * messages the answer stands for until the server holds them.
 */
function startAnswer(c, user, { messages = [], parentId = '', seed, temps = [] } = {}) {
  const model = ui.model.value;
  const m = c.addTemp({ role: 'assistant', status: 'streaming', parentId: user.id });
  if (c.local) m.model = model;
  c.updatedAt = Date.now();
  const body = source.body(c, { model, messages, parentId, user, seed });
  if (c === conv) drawConversation();
  follow(c, m, (handlers) => client.chat(body, handlers), { temps: [...temps, m] });
  announce('Sluice is answering.');
}

/** Follows a streaming answer: open(handlers) returns its ChatStream. */
function follow(c, msg, open, { reattached = false, floor = '', temps = [] } = {}) {
  const l = { conv: c, msg, stream: null, frame: 0, saveTimer: 0, net: '', netInfo: null, reattached, netTimer: 0, floor, temps, done: false };
  live.set(c.id, l);
  if (!c.local) c.lives.push(l);
  l.stream = open({
    onOpen: () => {
      snapshot(l);
      savePosition(l);
      if (c === conv) views.get(l.msg)?.setAttribute('data-stream-id', l.msg.streamId);
      // The server now holds the question and the answer's message.
      if (!c.local && l.msg.temp) syncSoon(c, 0);
    },
    onDelta: () => scheduleRender(l),
    onChunk: () => saveSoon(l),
    onState: (state, info) => netState(l, state, info),
  });
  l.stream.done.then((r) => finished(l, r));
  refresh();
  return l;
}

function scheduleRender(l) {
  if (l.frame) return;
  l.frame = 1;
  const run = () => {
    if (!l.frame) return;
    l.frame = 0;
    snapshot(l);
    if (l.conv === conv) drawMessage(l.msg);
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
  const c = l.conv;
  if (live.get(c.id) === l) live.delete(c.id);
  if (r.status === 'aborted' || leaving) {
    c.lives = c.lives.filter((x) => x !== l);
    return;
  }
  const m = l.msg;
  snapshot(l);
  m.status = statusOf[r.status] ?? 'error';
  if (r.finishReason) m.finishReason = r.finishReason;
  if (r.error) m.error = r.error.message;
  else delete m.error;
  // The stream can say no more; a failed connection may yet resume.
  if (r.status !== 'failed') store.forgetPosition(l.stream.id);
  l.done = true;
  l.final = { status: m.status, content: m.content, error: m.error, finishReason: m.finishReason };
  c.updatedAt = Date.now();
  if (c === conv) drawConversation();
  refresh();
  if (c.local) reloadList();
  else syncSoon(c, 0);
  if (r.error?.status === 401 && c === conv) {
    askKey(r.error.message).then((ok) => ok && regenerate(m));
    return;
  }
  announce({ done: 'Answer complete.', stopped: 'Stopped.', expired: 'The answer expired.' }[m.status] ?? 'The answer failed.');
}

/** Follows the answer of c's branch that streams on the server and not yet here. */
function reattach(c) {
  if (live.has(c.id) || c.local) return;
  const m = c.branch().findLast((x) => x.status === 'streaming' && x.streamId && !x.temp);
  if (!m || c.lives.some((l) => l.msg === m)) return;
  const pos = store.position(m.streamId) ?? { text: '', lastEventId: '' };
  follow(c, m, (h) => client.attach(m.streamId, pos.lastEventId, { ...h, text: pos.text }), { reattached: true, floor: m.content });
}

// ------------------------------------------------------------ the server's copy

/**
 * Puts the page's own knowledge over what the server said of c: the
 * temporary messages the server now holds give way to its messages, the
 * answers streaming here show their text, and the answers that ended here
 * show their end until the server has written it.
 */
function reconcile(c) {
  for (const l of [...c.lives]) {
    let m = c.items.get(l.msg.id);
    if (l.msg.temp) {
      m = [...c.items.values()].find((x) => !x.temp && ((l.stream.messageId && x.id === l.stream.messageId) || (l.stream.id && x.streamId === l.stream.id)));
      if (!m) continue; // not stored yet (or never: a refused request)
      c.dropTemps(l.temps);
      c.picked = m.id;
      c.leaf = m.id;
    }
    if (!m) {
      if (l.done) c.lives = c.lives.filter((x) => x !== l);
      continue;
    }
    l.msg = m;
    if (!l.done) {
      m.content = shownText(l);
      m.status = 'streaming';
    } else if (m.status === 'streaming') {
      Object.assign(m, l.final);
    } else {
      if (l.final.finishReason) m.finishReason = l.final.finishReason;
      c.lives = c.lives.filter((x) => x !== l);
    }
  }
}

/** Reloads chat c from the server, then redraws it if it is shown. */
function sync(c) {
  c.sync ??= coalesce(async () => {
    try {
      await source.load(c);
    } catch (err) {
      if (err?.status === 404 || err?.status === 403) return gone(c.id, 'This chat is not on the server (any more).');
      return failed('Could not load the chat', err);
    }
    reconcile(c);
    sidebar.heads.find((h) => h.id === c.id && (h.title = c.title));
    if (c === conv) {
      drawConversation();
      reattach(c);
    }
    refresh();
  });
  return c.sync();
}

/** Syncs c after delay ms; calls meanwhile add nothing. Waits while an answer streams here. */
function syncSoon(c, delay = 150) {
  if (c.local) return;
  const l = live.get(c.id);
  if (l && !l.msg.temp) {
    c.dirty = true; // its end syncs it
    return;
  }
  if (c.syncTimer) return;
  c.syncTimer = setTimeout(() => {
    c.syncTimer = 0;
    c.dirty = false;
    sync(c);
  }, delay);
}

/** Chat id is gone: deleted here or elsewhere. */
function gone(id, why) {
  live.get(id)?.stream.abort();
  chats.delete(id);
  sidebar.gone(id);
  if (conv?.id === id) {
    navigate(null);
    if (why) toast(why);
  }
}

// ------------------------------------------------------------ messages

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
  li.dataset.id = m.id;
  const sibs = conv.siblings(m);
  if (sibs.length > 1) {
    const i = sibs.indexOf(m);
    const what = m.role === 'assistant' ? 'answer' : 'message';
    const nav = el('nav', { class: 'branch', 'aria-label': `Versions of this ${what}` },
      el('button', { type: 'button', class: 'act', 'data-action': 'prev', 'aria-label': `Previous ${what}`, disabled: i === 0 }, icon('left')),
      el('span', { class: 'branch-pos', text: `${i + 1}/${sibs.length}` }),
      el('button', { type: 'button', class: 'act', 'data-action': 'next', 'aria-label': `Next ${what}`, disabled: i === sibs.length - 1 }, icon('right')));
    (li.querySelector('.body') ?? li).append(nav);
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
    const l2 = conv?.lives.find((x) => x.msg === m);
    if (l2 || conv?.local) {
      text = (m.error || 'The connection was lost.') + ' The answer may have gone on without you.';
      action = ['Reconnect', 'reconnect'];
    } else {
      text = 'The server stopped before this answer was complete.';
    }
    kind = 'error';
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
  const branch = conv.branch();
  const last = branch.at(-1);
  for (const m of branch) {
    const li = views.get(m);
    if (!li || m.role !== 'assistant') continue;
    const box = li.querySelector('.actions');
    box.textContent = '';
    if (m.status === 'streaming') continue;
    if (m.content) {
      box.append(el('button', { type: 'button', class: 'act', 'data-action': 'copy', 'aria-label': 'Copy answer', title: 'Copy' }, icon('copy')));
    }
    if (m === last && !live.has(conv.id)) {
      box.append(el('button', { type: 'button', class: 'act', 'data-action': 'regenerate', 'aria-label': 'Regenerate answer', title: 'Regenerate' }, icon('retry')));
    }
  }
}

function drawConversation() {
  const top = ui.scroller.scrollTop;
  const wasStuck = stick;
  ui.messages.textContent = '';
  views = new Map();
  const msgs = conv?.branch() ?? [];
  ui.empty.hidden = msgs.length > 0 || (conv && !conv.loaded);
  for (const m of msgs) ui.messages.append(messageEl(m));
  drawActions();
  document.title = conv ? `${conv.title} · Sluice` : 'Sluice';
  const model = conv?.model;
  if (model && [...ui.model.options].some((o) => o.value === model)) ui.model.value = model;
  if (drawConversation.shown === conv && !wasStuck) {
    ui.scroller.scrollTop = top; // a redraw of the same chat keeps the reader's place
  } else {
    stick = true;
    scrollToEnd();
  }
  drawConversation.shown = conv;
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

function refresh() {
  sidebar.draw();
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

const sidebar = new Sidebar(ui, {
  get source() {
    return source;
  },
  current: () => conv?.id ?? null,
  isLive: (id) => live.has(id),
  toast,
  error: failed,
  deleted: (id, { pending }) => {
    if (conv?.id === id) navigate(null);
    if (!pending) {
      // For real: an answer still streaming there stops with it.
      live.get(id)?.stream.stop();
      chats.delete(id);
    }
  },
  renamed: (id, title) => {
    const c = chats.get(id);
    if (c) c.title = title;
    if (c === conv) document.title = `${title} · Sluice`;
  },
});

/** Reloads the list of chats; a failure shows in the list itself. */
function reloadList() {
  sidebar.reload().catch(() => {});
}

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
  if (e.target.closest('.conv-link') && narrow.matches) showSidebar(false, { focus: false });
});

// ------------------------------------------------------------ routing

function route() {
  const m = /^#\/c\/([A-Za-z0-9_-]{1,100})$/.exec(location.hash);
  const id = m && !sidebar.pendingDelete(m[1]) ? m[1] : null;
  let c = id ? chats.get(id) ?? null : null;
  if (id && !c && !source.local) {
    c = new Chat({ id });
    chats.set(id, c);
  }
  if (id && !c) history.replaceState(null, '', location.pathname + location.search);
  conv = c;
  drawConversation();
  refresh();
  if (c && !c.local) {
    if (live.has(c.id)) syncSoon(c, 0);
    else sync(c);
  }
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

// ------------------------------------------------------------ composer

let sending = false;

async function send(text) {
  text = text.trim();
  if (!text || sending || (conv && live.has(conv.id))) return;
  sending = true;
  ui.input.value = '';
  autosize();
  try {
    let c = conv;
    if (!c) {
      try {
        c = await source.create(titleOf(text));
      } catch (err) {
        ui.input.value = text;
        autosize();
        failed('Could not start a chat', err);
        return;
      }
      chats.set(c.id, c);
      conv = c;
      history.pushState(null, '', '#/c/' + c.id);
      sidebar.upsert({ id: c.id, title: c.title, updatedAt: Date.now() });
    }
    const parentId = storedAncestor(c, c.leaf);
    const user = c.addTemp({ role: 'user', content: text, parentId: c.leaf });
    stick = true;
    startAnswer(c, user, { messages: [{ role: 'user', content: text }], parentId, temps: [user] });
    if (c.local) reloadList();
  } finally {
    sending = false;
  }
}

/** Asks for answer m again: a sibling of m, unless m was never stored (then in its place). */
function regenerate(m, { seed } = {}) {
  const c = conv;
  if (!c || live.has(c.id) || m.role !== 'assistant') return;
  const user = c.items.get(m.parentId);
  if (!user || user.role !== 'user') return;
  stick = true;
  if (m.temp) {
    c.dropTemps([m]);
    if (user.temp) {
      startAnswer(c, user, { messages: [{ role: 'user', content: user.content }], parentId: storedAncestor(c, user.parentId), seed, temps: [user] });
      return;
    }
  }
  // A regenerated answer gets another seed, so that it is another answer.
  startAnswer(c, user, { parentId: user.id, seed });
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
ui.model.addEventListener('change', () => (store.model = ui.model.value));

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

// Buttons inside the messages: copy code, copy an answer, regenerate,
// retry, reconnect, and < > between versions.
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
      regenerate(m, { seed: crypto.getRandomValues(new Uint32Array(1))[0] });
      break;
    case 'retry':
      regenerate(m);
      break;
    case 'reconnect':
      conv.lives = conv.lives.filter((l) => l.msg !== m);
      m.status = 'streaming';
      delete m.error;
      if (conv.local) follow(conv, m, (h) => client.attach(m.streamId, store.position(m.streamId)?.lastEventId ?? '', { ...h, text: m.content }), { reattached: true, floor: m.content });
      else reattach(conv);
      drawMessage(m);
      break;
    case 'prev':
    case 'next': {
      const sibs = conv.siblings(m);
      const to = sibs[sibs.indexOf(m) + (btn.dataset.action === 'prev' ? -1 : 1)];
      if (!to) break;
      conv.pick(to.id);
      drawConversation();
      reattach(conv);
      views.get(conv.items.get(to.id))?.querySelector(`[data-action="${btn.dataset.action}"]`)?.focus();
      break;
    }
  }
});

addEventListener('online', drawNet);
addEventListener('offline', drawNet);

// ------------------------------------------------------------ other tabs and devices

let feed = null;

/** Follows the server's change feed: every tab and device of this key sees each change. */
function startFeed() {
  feed?.close();
  feed = null;
  if (source.local) return;
  feed = client.conversations.events({
    onEvent: (ev) => {
      let d;
      try {
        d = JSON.parse(ev.data);
      } catch {
        return;
      }
      const type = d?.type ?? ev.event;
      if (type === 'conversation.deleted') return gone(d.id, 'This chat was deleted.');
      reloadList();
      const c = chats.get(d?.id);
      if (c && (c === conv || c.lives.length)) syncSoon(c);
    },
    // Events may have been missed while it was away (a server restart
    // starts the feed afresh): catch up.
    onState: (state) => state === 'resumed' && catchUp(),
  });
}

let catchUpTimer = 0;
/** Reloads the list and the chat shown: the page comes back into view, or the feed back. */
function catchUp() {
  clearTimeout(catchUpTimer);
  catchUpTimer = setTimeout(() => {
    reloadList();
    if (conv && !conv.local) syncSoon(conv, 0);
  }, 100);
}
document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && catchUp());
addEventListener('focus', catchUp);

// ------------------------------------------------------------ the chats of earlier pages

/** Offers, once, to import the chats this browser kept before the server did. */
function offerImport() {
  const old = source.local ? [] : store.legacyChats();
  ui.importBox.hidden = old.length === 0;
  if (!old.length) return;
  ui.importText.textContent = `This browser holds ${old.length === 1 ? '1 chat' : `${old.length} chats`} from before the server kept them. Import them to the server?`;
}

async function importLegacy() {
  ui.importBox.hidden = true;
  const old = store.legacyChats();
  if (!store.claimImport()) return; // another tab took it
  const done = [];
  let error = null;
  for (const c of old) {
    const items = c.messages
      .filter((m) => m?.content && (m.role === 'user' || m.role === 'assistant'))
      .map((m) => ({ type: 'message', role: m.role, content: String(m.content) }));
    try {
      await client.conversations.create({ title: c.title || titleOf(items[0]?.content ?? ''), items });
      done.push(c.id);
    } catch (err) {
      error = err;
    }
  }
  store.dropLegacy(done);
  if (error) {
    store.releaseImport();
    failed(`${old.length - done.length} of ${old.length} chats could not be imported`, error);
  } else {
    toast(`Imported ${done.length === 1 ? '1 chat' : `${done.length} chats`}.`);
  }
  reloadList();
}

$('import-yes').addEventListener('click', importLegacy);
$('import-no').addEventListener('click', () => {
  store.claimImport();
  ui.importBox.hidden = true;
});
store.onImportClaimed(offerImport);

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
ui.keyButton.addEventListener('click', () => askKey('').then((ok) => ok && start()));

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

/**
 * Finds where chats are kept, loads the list, and follows its changes: a
 * server that answers 404 keeps none (--data-dir off), and the page then
 * keeps them itself; 401 asks for a key first.
 */
async function start() {
  for (;;) {
    try {
      await sidebar.reload();
      break;
    } catch (err) {
      if (err?.status === 401 && (await askKey(err.message))) continue;
      if (err?.status === 404 && !source.local) {
        source = new MemoryChats();
        continue;
      }
      break; // the sidebar says why; sending still tries
    }
  }
  startFeed();
  offerImport();
}

if (store.sidebarCollapsed && !narrow.matches) ui.app.classList.add('sidebar-collapsed');
ui.menu.setAttribute('aria-expanded', String(sidebarShown()));
store.prunePositions();
await start();
route();
autosize();
await loadModels();
ui.app.dataset.ready = 'true';
if (!narrow.matches) ui.input.focus();
