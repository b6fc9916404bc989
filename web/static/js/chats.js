// chats.js: the conversations the chat page shows, and where they are kept.
//
// A conversation is a tree of messages, as the server keeps it (issue 15):
// a regenerated answer is a sibling of the one before, and the page shows
// one branch, from the first message to a leaf, with < 1/2 > between
// siblings. The server is the one source of truth: the page never writes a
// message's text or status; the server stores the question it is sent and
// the answer as it streams, and the page reloads what the server holds
// when something changed (a change-feed event, an answer that started or
// ended, the page coming back into focus). Until the server has stored
// them, a question just sent and its answer are "temporary" messages of
// the page, in place in the tree.
//
// A server started with --data-dir off keeps no conversations; the page
// then keeps them in memory (MemoryChats), until it is left.

import { itemText } from './sluice/index.js';

/** The page's status of a message, from the server's. */
const statusOf = { in_progress: 'streaming', completed: 'done', cancelled: 'stopped', failed: 'error', interrupted: 'interrupted' };

/** A message as the page draws it, from a server item. */
export function messageOf(item, seq) {
  const m = {
    id: item.id,
    parentId: item.parent_id ?? '',
    role: item.role,
    content: itemText(item),
    status: item.role === 'assistant' ? statusOf[item.status] ?? 'done' : 'done',
    seq,
  };
  if (item.model) m.model = item.model;
  if (item.stream_id) m.streamId = item.stream_id;
  if (item.error?.message) m.error = item.error.message;
  return m;
}

let tempSeq = 0;

/**
 * Chat is one conversation: its head (id, title, updatedAt) and its
 * messages as a tree. leaf is the message the branch shown ends with.
 */
export class Chat {
  #kids = null; // parent ID → children in order, until the next change

  constructor({ id, title = 'New chat', updatedAt = Date.now() }, { local = false } = {}) {
    this.id = id;
    this.title = title;
    this.updatedAt = updatedAt;
    this.local = local;
    this.loaded = local;
    /** The messages by ID. */
    this.items = new Map();
    /** The messages the page made and the server does not hold (yet). */
    this.temps = [];
    /**
     * The answers this page follows or followed here (app.js's live
     * records), until the server holds each one as ended: they say which
     * stored message a temporary one became, and how an answer ended before
     * the server has written its end.
     */
    this.lives = [];
    /** The server's current_id: the message last added. */
    this.currentId = '';
    /** The leaf someone chose with < > (kept while it is a leaf). */
    this.picked = '';
    this.leaf = '';
  }

  /** Takes the server's head and items, keeping the temporary messages. */
  setServer(head, items) {
    this.title = head.title || this.title;
    this.updatedAt = (head.updated_at ?? 0) * 1000 || this.updatedAt;
    this.currentId = head.current_id ?? '';
    this.items = new Map(items.map((it, i) => [it.id, messageOf(it, i)]));
    this.#kids = null;
    this.loaded = true;
    for (const t of this.temps) this.items.set(t.id, t);
    this.#chooseLeaf();
  }

  /** Adds a message of the page's own; returns it. */
  addTemp({ role, content = '', status = 'done', parentId = '' }) {
    const m = { id: `tmp-${++tempSeq}`, parentId, role, content, status, seq: Infinity, temp: true };
    this.temps.push(m);
    this.items.set(m.id, m);
    this.#kids = null;
    this.picked = m.id;
    this.leaf = m.id;
    if (this.local) {
      m.temp = false; // nothing else will ever hold it
      m.seq = this.items.size;
      this.currentId = m.id;
    }
    return m;
  }

  /** Forgets temporary messages (once the server holds what they stood for). */
  dropTemps(ms) {
    this.temps = this.temps.filter((t) => !ms.includes(t));
    for (const m of ms) if (this.items.get(m.id) === m) this.items.delete(m.id);
    this.#kids = null;
    if (ms.some((m) => m.id === this.picked)) this.picked = '';
    this.#chooseLeaf();
  }

  /** The children of message parentId ('' for the roots), in order. */
  children(parentId) {
    if (!this.#kids) {
      // Built once per change, so that drawing a long branch stays linear.
      this.#kids = new Map();
      for (const m of this.items.values()) {
        const list = this.#kids.get(m.parentId);
        if (list) list.push(m);
        else this.#kids.set(m.parentId, [m]);
      }
      for (const list of this.#kids.values()) list.sort((a, b) => a.seq - b.seq);
    }
    return this.#kids.get(parentId) ?? [];
  }

  /** The branch shown: root first. */
  branch() {
    const out = [];
    for (let m = this.items.get(this.leaf); m && out.length <= this.items.size; m = this.items.get(m.parentId)) out.push(m);
    return out.reverse();
  }

  /** m and its siblings, in order. */
  siblings(m) {
    return this.children(m.parentId);
  }

  /** Shows the branch through message id, down to its newest leaf. */
  pick(id) {
    let m = this.items.get(id);
    if (!m) return;
    for (let kids = this.children(m.id); kids.length; kids = this.children(m.id)) m = kids.at(-1);
    this.picked = m.id;
    this.leaf = m.id;
  }

  /** The model of the newest answer shown, if any. */
  get model() {
    return this.branch().findLast((m) => m.model)?.model ?? null;
  }

  #chooseLeaf() {
    const isLeaf = (id) => this.items.has(id) && !this.children(id).length;
    if (this.picked && isLeaf(this.picked)) this.leaf = this.picked;
    else if (this.items.has(this.currentId)) this.pick(this.currentId);
    else {
      const last = [...this.items.values()].sort((a, b) => a.seq - b.seq).at(-1);
      this.leaf = last?.id ?? '';
      this.picked = '';
    }
  }
}

/** The history a model reads to answer after message id: the branch up to it. */
export function historyTo(chat, id) {
  const out = [];
  for (let m = chat.items.get(id); m; m = chat.items.get(m.parentId)) {
    if (m.content && (m.role === 'user' || m.role === 'assistant')) out.push({ role: m.role, content: m.content });
  }
  return out.reverse();
}

/**
 * ServerChats keeps conversations on the server, through the client's
 * conversation calls. Every method may throw the client's SluiceError.
 */
export class ServerChats {
  local = false;

  constructor(client) {
    this.client = client;
  }

  /** The caller's conversations, newest change first: {heads, next} (next() for more, or null). */
  async list(q) {
    const page = await this.client.conversations.list({ q, limit: 50 });
    return pageOf(page);
  }

  async create(title) {
    const head = await this.client.conversations.create({ title });
    const c = new Chat({ id: head.id });
    c.setServer(head, []);
    return c;
  }

  /** Loads c's head and every message from the server. */
  async load(c) {
    const [head, items] = await Promise.all([this.client.conversations.retrieve(c.id), this.#items(c.id)]);
    c.setServer(head, items);
    return c;
  }

  async #items(id) {
    const out = [];
    for await (const it of await this.client.conversations.items.list(id, { order: 'asc', limit: 100 })) out.push(it);
    return out;
  }

  rename(c, title) {
    return this.client.conversations.update(c.id, { title });
  }

  remove(id, { keepalive = false } = {}) {
    return this.client.conversations.delete(id, { keepalive });
  }

  /**
   * The chat request that answers user, a user message of c: messages are
   * the new ones, stored under parentId (none, with parentId user's own
   * ID, to answer it again); the server puts the stored branch first.
   */
  body(c, { model, messages, parentId, seed }) {
    const body = { model, messages, conversation: c.id };
    if (parentId) body.parent_id = parentId;
    if (seed != null) body.seed = seed;
    return body;
  }
}

/** The nearest message at or above id that the server holds ('' for none). */
export function storedAncestor(c, id) {
  let m = c.items.get(id);
  while (m?.temp) m = c.items.get(m.parentId);
  return m?.id ?? '';
}

async function pageOf(page) {
  return {
    heads: page.data.map((h) => ({ id: h.id, title: h.title || 'New chat', updatedAt: (h.updated_at ?? 0) * 1000 })),
    next: page.hasMore ? async () => pageOf(await page.nextPage()) : null,
  };
}

/** MemoryChats keeps conversations in the page, for a server that keeps none. */
export class MemoryChats {
  local = true;
  #chats = new Map();
  #n = 0;

  async list(q) {
    const needle = (q ?? '').toLowerCase();
    const heads = [...this.#chats.values()]
      .filter((c) => c.items.size && (!needle || c.title.toLowerCase().includes(needle) || [...c.items.values()].some((m) => m.content.toLowerCase().includes(needle))))
      .sort((a, b) => b.updatedAt - a.updatedAt)
      .map(({ id, title, updatedAt }) => ({ id, title, updatedAt }));
    return { heads, next: null };
  }

  async create(title) {
    const c = new Chat({ id: `local${++this.#n}`, title }, { local: true });
    this.#chats.set(c.id, c);
    return c;
  }

  async load(c) {
    return this.#chats.get(c.id) ?? c;
  }

  get(id) {
    return this.#chats.get(id) ?? null;
  }

  async rename(c, title) {
    const chat = this.#chats.get(c.id);
    if (chat) chat.title = title;
  }

  async remove(id) {
    this.#chats.delete(id);
  }

  /** Without a stored conversation, the request carries the whole branch. */
  body(c, { model, user, seed }) {
    const body = { model, messages: historyTo(c, user.id) };
    if (seed != null) body.seed = seed;
    return body;
  }
}
