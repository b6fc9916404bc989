// store.js: conversations kept in the browser's localStorage, until the
// server stores them.
//
// Layout: "sluice:v1:index" holds the list of conversations (id, title,
// updatedAt, live) and each conversation lives under "sluice:v1:c:<id>", so
// that saving the answer that is streaming writes one small record, not all
// of them. A conversation is
//   { id, title, model, createdAt, updatedAt, messages: [message…] }
// and a message is { role: 'user' | 'assistant', content } plus, for answers,
//   status: 'streaming' | 'done' | 'stopped' | 'error' | 'expired' | 'interrupted',
//   streamId, lastEventId (where to resume), error (a message), finishReason.
// content and lastEventId are always written together, so a page that is
// reloaded resumes exactly after the text it shows.

const PREFIX = 'sluice:v1:';
const INDEX = PREFIX + 'index';
const MODEL = PREFIX + 'model';
const SIDEBAR = PREFIX + 'sidebar';
const KEY = PREFIX + 'key';

/** A random ID; crypto.randomUUID is missing outside secure contexts. */
export function newId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** The title of a conversation: the start of its first message. */
export function titleOf(text) {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 48 ? t.slice(0, 47).trimEnd() + '…' : t || 'New chat';
}

export class Store {
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
  }

  #read(key, fallback) {
    try {
      const v = this.storage.getItem(key);
      return v == null ? fallback : JSON.parse(v);
    } catch {
      return fallback;
    }
  }

  #remove(key) {
    try {
      this.storage.removeItem(key);
    } catch {
      // unavailable storage holds nothing to remove
    }
  }

  /** Writes key; returns false when storage is full or unavailable. */
  #write(key, value) {
    try {
      this.storage.setItem(key, JSON.stringify(value));
      return true;
    } catch {
      return false;
    }
  }

  /** The conversations, most recent first. */
  list() {
    const idx = this.#read(INDEX, []);
    return Array.isArray(idx) ? idx.slice().sort((a, b) => b.updatedAt - a.updatedAt) : [];
  }

  get(id) {
    const c = this.#read(PREFIX + 'c:' + id, null);
    return c && Array.isArray(c.messages) ? c : null;
  }

  /** A new, unsaved conversation. */
  create(model) {
    const now = Date.now();
    return { id: newId(), title: 'New chat', model, createdAt: now, updatedAt: now, messages: [] };
  }

  /** Saves c and its index entry; returns false if the browser refused. */
  save(c) {
    const ok = this.#write(PREFIX + 'c:' + c.id, c);
    const idx = this.list().filter((e) => e.id !== c.id);
    const last = c.messages.at(-1);
    idx.push({ id: c.id, title: c.title, updatedAt: c.updatedAt, live: last?.status === 'streaming' });
    return this.#write(INDEX, idx) && ok;
  }

  remove(id) {
    this.#remove(PREFIX + 'c:' + id);
    this.#write(INDEX, this.list().filter((e) => e.id !== id));
  }

  get model() {
    return this.#read(MODEL, null);
  }

  set model(id) {
    this.#write(MODEL, id);
  }

  /** The API key for servers that need one ('' for none). */
  get apiKey() {
    return this.#read(KEY, '') || '';
  }

  set apiKey(key) {
    if (key) this.#write(KEY, key);
    else this.#remove(KEY);
  }

  get sidebarCollapsed() {
    return this.#read(SIDEBAR, false) === true;
  }

  set sidebarCollapsed(v) {
    this.#write(SIDEBAR, !!v);
  }

  /** Calls fn(id or null) when another tab changes a conversation or the list. */
  onChange(fn) {
    addEventListener('storage', (e) => {
      if (e.key === null || e.key === INDEX) fn(null);
      else if (e.key.startsWith(PREFIX + 'c:')) fn(e.key.slice(PREFIX.length + 2));
    });
  }
}
