// store.js: what the chat page keeps in the browser's localStorage. The
// conversations themselves are kept on the server (chats.js); the browser
// keeps only the page's preferences (model, sidebar, API key), where each
// answer it follows has got to (so that a reload resumes right after the
// text it shows), and, until they are imported once, the conversations of
// the pages before the server kept them.
//
// Where an answer has got to: "sluice:v2:pos:<stream ID>" holds
// {text, lastEventId, at}, written together, a few times a second while
// the answer streams and when the page goes away, and removed when it ends.
//
// The conversations of earlier pages: "sluice:v1:index" listed them (id,
// title, updatedAt) and "sluice:v1:c:<id>" held each one,
//   { id, title, model, createdAt, updatedAt, messages: [{role, content, status…}] }.

const V1 = 'sluice:v1:';
const V1_INDEX = V1 + 'index';
const MODEL = V1 + 'model';
const SIDEBAR = V1 + 'sidebar';
const KEY = V1 + 'key';
const POS = 'sluice:v2:pos:';
const IMPORTED = 'sluice:v2:imported';
/** A position older than this belongs to an answer long gone. */
const POS_MAX_AGE_MS = 24 * 3600 * 1000;

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

  #keys() {
    try {
      return Object.keys(this.storage);
    } catch {
      return [];
    }
  }

  /** Where the answer of stream id has got to: {text, lastEventId}, or null. */
  position(id) {
    const p = this.#read(POS + id, null);
    return p && typeof p.text === 'string' && typeof p.lastEventId === 'string' ? p : null;
  }

  savePosition(id, text, lastEventId) {
    if (id) this.#write(POS + id, { text, lastEventId, at: Date.now() });
  }

  forgetPosition(id) {
    if (id) this.#remove(POS + id);
  }

  /** Forgets the positions of answers that ended long ago without this page seeing it. */
  prunePositions(now = Date.now()) {
    for (const k of this.#keys()) {
      if (!k.startsWith(POS)) continue;
      const p = this.#read(k, null);
      if (!(p?.at > now - POS_MAX_AGE_MS)) this.#remove(k);
    }
  }

  /**
   * The conversations of the pages from before the server kept them, oldest
   * first, with at least one message; [] once they were imported or the
   * offer was declined.
   */
  legacyChats() {
    if (this.#read(IMPORTED, false)) return [];
    const idx = this.#read(V1_INDEX, []);
    if (!Array.isArray(idx)) return [];
    return idx
      .map((e) => this.#read(V1 + 'c:' + e?.id, null))
      .filter((c) => c && Array.isArray(c.messages) && c.messages.some((m) => m?.content))
      .sort((a, b) => (a.updatedAt ?? 0) - (b.updatedAt ?? 0));
  }

  /**
   * Records that the offer to import was taken or declined, so that it is
   * never made again (in this tab or another); returns false if another
   * tab had already done so.
   */
  claimImport() {
    if (this.#read(IMPORTED, false)) return false;
    this.#write(IMPORTED, true);
    return true;
  }

  /** Makes the offer again: an import failed. */
  releaseImport() {
    this.#remove(IMPORTED);
  }

  /** Removes the conversations of earlier pages that the server now has. */
  dropLegacy(ids) {
    const gone = new Set(ids);
    for (const id of gone) this.#remove(V1 + 'c:' + id);
    const idx = this.#read(V1_INDEX, []);
    const left = Array.isArray(idx) ? idx.filter((e) => !gone.has(e?.id)) : [];
    if (left.length) this.#write(V1_INDEX, left);
    else this.#remove(V1_INDEX);
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

  /** Calls fn() when another tab takes or declines the import offer. */
  onImportClaimed(fn) {
    addEventListener('storage', (e) => {
      if (e.key === IMPORTED || e.key === null) fn();
    });
  }
}
