// app.js: the chat page. It runs the page: sending, the answers streaming,
// keeping in step with the server, routing. Streaming is the client's job
// (@sluice-dev/client, from clients/js, served under ./sluice/; or, with
// ?transport=ws in the page's URL, ws-client.js's: the same streams over
// /ws); the conversations' tree and where they are kept is chats.js's (on
// the server); drawing them is view.js's (Markdown markdown.js's); the list
// of chats is sidebar.js's, the key keys.js's, the import of a browser's
// own chats importer.js's, and what the browser keeps store.js's. The state
// they share is page.js's.
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
import { Store, titleOf } from './store.js';
import { Chat, MemoryChats, ServerChats, storedAncestor } from './chats.js';
import { Sidebar } from './sidebar.js';
import { Keys } from './keys.js';
import { Importer } from './importer.js';
import { el, icon } from './dom.js';
import { announce, copyText, live, page, toast, ui } from './page.js';
import { drawActions, drawComposer, drawConversation, drawMessage, drawNet, drawStatus, scrollToEnd } from './view.js';

const store = new Store();
/** 'sse' (the default) or 'ws': how answers stream, chosen by ?transport=. */
const transport = new URLSearchParams(location.search).get('transport') === 'ws' ? 'ws' : 'sse';
const client = transport === 'ws' ? new SluiceWSClient() : new SluiceClient();
ui.app.dataset.transport = transport;
const keys = new Keys(store, client, { onChange: () => start() });
/** Where conversations are kept: the server's, or the page's memory when the server keeps none. */
let source = new ServerChats(client);
/** The conversations loaded, by ID. */
const chats = new Map();
/** Set while the page unloads: streams cut then must not be taken for failed. */
let leaving = false;

// ------------------------------------------------------------ small helpers

/** Reports a failed call; a missing key is asked for. */
function failed(what, err) {
  if (err?.status === 401) {
    keys.ask(err.message).then((ok) => ok && start());
    return;
  }
  toast(`${what}: ${err?.message ?? err}`);
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
  if (c === page.conv) drawConversation();
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
      if (c === page.conv) page.views.get(l.msg)?.setAttribute('data-stream-id', l.msg.streamId);
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
    if (l.conv === page.conv) drawMessage(l.msg);
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
  if (c === page.conv) drawConversation();
  refresh();
  if (c.local) reloadList();
  else syncSoon(c, 0);
  if (r.error?.status === 401 && c === page.conv) {
    keys.ask(r.error.message).then((ok) => ok && regenerate(m));
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
    if (c === page.conv) {
      drawConversation();
      reattach(c);
    }
    refresh();
  });
  return c.sync();
}

/**
 * Syncs c after delay ms; calls meanwhile add nothing. While an answer
 * streams here in c, not at all: its end syncs it (until then a reload
 * would only redraw what the stream draws).
 */
function syncSoon(c, delay = 150) {
  if (c.local) return;
  const l = live.get(c.id);
  if ((l && !l.msg.temp) || c.syncTimer) return;
  c.syncTimer = setTimeout(() => {
    c.syncTimer = 0;
    sync(c);
  }, delay);
}

/** Chat id is gone: deleted here or elsewhere. */
function gone(id, why) {
  live.get(id)?.stream.abort();
  chats.delete(id);
  sidebar.gone(id);
  if (page.conv?.id === id) {
    navigate(null);
    if (why) toast(why);
  }
}

// ------------------------------------------------------------ messages

function refresh() {
  sidebar.draw();
  drawComposer();
  drawActions();
  drawNet();
}

ui.scroller.addEventListener('scroll', () => {
  const s = ui.scroller;
  page.stick = s.scrollHeight - s.scrollTop - s.clientHeight < 80;
  ui.jump.hidden = page.stick;
}, { passive: true });
ui.jump.addEventListener('click', () => {
  page.stick = true;
  ui.scroller.scrollTo({ top: ui.scroller.scrollHeight, behavior: 'smooth' });
  ui.input.focus();
});

// ------------------------------------------------------------ sidebar

const sidebar = new Sidebar(ui, {
  get source() {
    return source;
  },
  current: () => page.conv?.id ?? null,
  isLive: (id) => live.has(id),
  toast,
  error: failed,
  deleted: (id, { pending }) => {
    if (page.conv?.id === id) navigate(null);
    if (!pending) {
      // For real: an answer still streaming there stops with it.
      live.get(id)?.stream.stop();
      chats.delete(id);
    }
  },
  renamed: (id, title) => {
    const c = chats.get(id);
    if (c) c.title = title;
    if (c === page.conv) document.title = `${title} · Sluice`;
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
  page.conv = c;
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
  if (!text || sending || (page.conv && live.has(page.conv.id))) return;
  sending = true;
  ui.input.value = '';
  autosize();
  try {
    let c = page.conv;
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
      page.conv = c;
      history.pushState(null, '', '#/c/' + c.id);
      sidebar.upsert({ id: c.id, title: c.title, updatedAt: Date.now() });
    }
    const parentId = storedAncestor(c, c.leaf);
    const user = c.addTemp({ role: 'user', content: text, parentId: c.leaf });
    page.stick = true;
    startAnswer(c, user, { messages: [{ role: 'user', content: text }], parentId, temps: [user] });
    if (c.local) reloadList();
  } finally {
    sending = false;
  }
}

/** Asks for answer m again: a sibling of m, unless m was never stored (then in its place). */
function regenerate(m, { seed } = {}) {
  const c = page.conv;
  if (!c || live.has(c.id) || m.role !== 'assistant') return;
  const user = c.items.get(m.parentId);
  if (!user || user.role !== 'user') return;
  page.stick = true;
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
  const l = page.conv && live.get(page.conv.id);
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
    else if (page.conv && live.has(page.conv.id)) {
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
  if (!btn || !page.conv) return;
  const li = btn.closest('.msg');
  const m = [...page.views].find(([, v]) => v === li)?.[0];
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
      page.conv.lives = page.conv.lives.filter((l) => l.msg !== m);
      m.status = 'streaming';
      delete m.error;
      if (page.conv.local) follow(page.conv, m, (h) => client.attach(m.streamId, store.position(m.streamId)?.lastEventId ?? '', { ...h, text: m.content }), { reattached: true, floor: m.content });
      else reattach(page.conv);
      drawMessage(m);
      break;
    case 'prev':
    case 'next': {
      const sibs = page.conv.siblings(m);
      const to = sibs[sibs.indexOf(m) + (btn.dataset.action === 'prev' ? -1 : 1)];
      if (!to) break;
      page.conv.pick(to.id);
      drawConversation();
      reattach(page.conv);
      page.views.get(page.conv.items.get(to.id))?.querySelector(`[data-action="${btn.dataset.action}"]`)?.focus();
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
      if (c && (c === page.conv || c.lives.length)) syncSoon(c);
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
    if (page.conv && !page.conv.local) syncSoon(page.conv, 0);
  }, 100);
}
document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && catchUp());
addEventListener('focus', catchUp);

// ------------------------------------------------------------ the chats of earlier pages

// ------------------------------------------------------------ API key

// ------------------------------------------------------------ the chats of earlier pages

const importer = new Importer(store, client, { local: () => source.local, failed, imported: () => reloadList() });

// ------------------------------------------------------------ start

async function loadModels() {
  try {
    const models = await client.models();
    if (!models.length) return;
    ui.model.textContent = '';
    for (const m of models) ui.model.append(el('option', { value: m.id, text: m.id }));
    const want = page.conv?.model ?? store.model;
    if (want && models.some((m) => m.id === want)) ui.model.value = want;
  } catch (err) {
    if (err.status === 401 && (await keys.ask(err.message))) return loadModels();
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
      if (err?.status === 401 && (await keys.ask(err.message))) continue;
      if (err?.status === 404 && !source.local) {
        source = new MemoryChats();
        continue;
      }
      break; // the sidebar says why; sending still tries
    }
  }
  startFeed();
  importer.offer();
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
