// conversations.js: the conversations a Sluice server keeps (issue 15),
// shaped like OpenAI's Conversations API, so that its habits carry over:
// client.conversations.create(), .retrieve(), .update(), .delete(),
// .list(), .items.list(), … and the change feed that keeps tabs and
// devices in step, .events().

import { Subscription } from './topic.js';

/** The change feed's path: an event stream of the caller's conversations. */
const EVENTS_PATH = '/v1/conversations/events';

/**
 * Page is one page of a list: data (the objects), hasMore, firstId and
 * lastId, and nextPage() (null when there is none). Iterating it with
 * for await yields every object of this page and of the pages after it,
 * fetching them as the loop goes.
 */
export class Page {
  #next;

  /** @internal Made by the list calls: next(after) fetches the following page. */
  constructor(body, next) {
    this.data = Array.isArray(body?.data) ? body.data : [];
    this.hasMore = body?.has_more === true;
    this.firstId = body?.first_id ?? null;
    this.lastId = body?.last_id ?? this.data.at(-1)?.id ?? null;
    this.#next = next;
  }

  /** The page after this one, or null. */
  async nextPage() {
    if (!this.hasMore || !this.lastId) return null;
    return this.#next(this.lastId);
  }

  async *[Symbol.asyncIterator]() {
    for (let page = this; page; page = await page.nextPage()) yield* page.data;
  }
}

/** Query text of the defined, non-empty entries of params ('' for none). */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}

const enc = encodeURIComponent;

/**
 * Conversations is SluiceClient.conversations. json is the client's JSON
 * request function: (method, path, {body, signal, keepalive}) → the parsed
 * body, throwing SluiceError on an error status.
 */
export class Conversations {
  #client;
  #json;

  /** @internal */
  constructor(client, json) {
    this.#client = client;
    this.#json = json;
    this.items = new ConversationItems(json);
  }

  /**
   * POST /v1/conversations: a new conversation, with items (messages:
   * {type: 'message', role, content}, content a string or parts), title and
   * metadata, all optional. Resolves to the conversation object.
   */
  create({ items, title, metadata } = {}, { signal } = {}) {
    const body = {};
    if (items !== undefined) body.items = items;
    if (title !== undefined) body.title = title;
    if (metadata !== undefined) body.metadata = metadata;
    return this.#json('POST', '/v1/conversations', { body, signal });
  }

  /** GET /v1/conversations/{id}. */
  retrieve(id, { signal } = {}) {
    return this.#json('GET', `/v1/conversations/${enc(id)}`, { signal });
  }

  /** POST /v1/conversations/{id}: changes its title and/or metadata. */
  update(id, { title, metadata } = {}, { signal } = {}) {
    const body = {};
    if (title !== undefined) body.title = title;
    if (metadata !== undefined) body.metadata = metadata;
    return this.#json('POST', `/v1/conversations/${enc(id)}`, { body, signal });
  }

  /**
   * DELETE /v1/conversations/{id}. keepalive lets the request outlive a
   * page that is closing (fetch's keepalive). Resolves to
   * {id, object: 'conversation.deleted', deleted: true}.
   */
  delete(id, { signal, keepalive } = {}) {
    return this.#json('DELETE', `/v1/conversations/${enc(id)}`, { signal, keepalive });
  }

  /**
   * GET /v1/conversations: the caller's conversations, the most recently
   * changed first, a page at a time (limit 1 to 100, after a conversation
   * ID); q keeps those whose title or messages contain it. Resolves to a
   * Page.
   */
  async list({ limit, after, q, signal } = {}) {
    const fetchPage = async (from) => {
      const body = await this.#json('GET', '/v1/conversations' + query({ limit, after: from, q }), { signal });
      return new Page(body, fetchPage);
    };
    return fetchPage(after);
  }

  /**
   * GET /v1/conversations/{id}/export: the conversation as a file, 'json'
   * or 'markdown'. Resolves to its text.
   */
  async export(id, { format = 'json', signal } = {}) {
    const res = await this.#json('GET', `/v1/conversations/${enc(id)}/export` + query({ format }), { signal, raw: true });
    return res.text();
  }

  /**
   * Follows the change feed (GET /v1/conversations/events): every change to
   * the caller's conversations, made by any tab, device or node, from now
   * on (or after lastEventId). Returns a Subscription whose events' data
   * is JSON: {type: 'conversation.created' | 'conversation.updated' |
   * 'conversation.deleted', id, updated_at}. Options are those of
   * SluiceClient.subscribe but from; by default it never stops
   * reconnecting.
   */
  events(opts = {}) {
    const c = this.#client;
    const retry = { ...c.retryPolicy({ maxAttempts: Infinity, ...opts.retry }) };
    return new Subscription(c, 'conversations', { ...opts, from: undefined, retry, path: EVENTS_PATH });
  }
}

/** ConversationItems is SluiceClient.conversations.items: a conversation's messages. */
export class ConversationItems {
  #json;

  /** @internal */
  constructor(json) {
    this.#json = json;
  }

  /**
   * GET /v1/conversations/{id}/items: a page of its messages, in order
   * 'asc' (oldest first) or 'desc' (newest first, OpenAI's default);
   * limit 1 to 100, after an item ID. Resolves to a Page.
   */
  async list(id, { limit, after, order, signal } = {}) {
    const fetchPage = async (from) => {
      const path = `/v1/conversations/${enc(id)}/items` + query({ limit, after: from, order });
      return new Page(await this.#json('GET', path, { signal }), fetchPage);
    };
    return fetchPage(after);
  }

  /**
   * POST /v1/conversations/{id}/items: adds messages ({type: 'message',
   * role, content, parent_id?}), each under the one before unless it names
   * its parent. Resolves to a Page of the items made.
   */
  async create(id, items, { signal } = {}) {
    const body = await this.#json('POST', `/v1/conversations/${enc(id)}/items`, { body: { items }, signal });
    return new Page(body, async () => null);
  }

  /** GET /v1/conversations/{id}/items/{itemId}. */
  retrieve(id, itemId, { signal } = {}) {
    return this.#json('GET', `/v1/conversations/${enc(id)}/items/${enc(itemId)}`, { signal });
  }

  /**
   * DELETE /v1/conversations/{id}/items/{itemId}: its children move under
   * its parent. Resolves to the conversation.
   */
  delete(id, itemId, { signal } = {}) {
    return this.#json('DELETE', `/v1/conversations/${enc(id)}/items/${enc(itemId)}`, { signal });
  }
}

/** The text of an item's content: its parts' text, joined. */
export function itemText(item) {
  const c = item?.content;
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) return '';
  return c.map((p) => (typeof p?.text === 'string' ? p.text : '')).join('');
}
