// client.js: SluiceClient, the entry point: one Sluice server, its key,
// and every call the API offers.

import { ChatStream } from './chat.js';
import { Conversations } from './conversations.js';
import { errorOf } from './errors.js';
import { defaultRetry } from './follow.js';
import { Subscription } from './topic.js';

/**
 * SluiceClient talks to one Sluice server. Its fields may be changed at any
 * time and apply to the requests that follow:
 *   baseURL  the server's origin, e.g. 'http://127.0.0.1:8080' ('' in a page
 *            served by Sluice itself: its own origin)
 *   apiKey   sent as Authorization: Bearer when set
 *   headers  added to every request
 *   retry    the reconnect policy of every stream (see defaultRetry); each
 *            call's retry option overrides it field by field
 *   fetch    the fetch function (the runtime's by default)
 */
export class SluiceClient {
  constructor({ baseURL = '', apiKey = '', headers = {}, retry = {}, fetch: f } = {}) {
    this.baseURL = baseURL;
    this.apiKey = apiKey;
    this.headers = headers;
    this.retry = retry;
    // Called through a closure: a browser's fetch must not be called as a
    // method of another object.
    this.fetch = f ?? ((...args) => globalThis.fetch(...args));
    /** The conversations the server keeps (see conversations.js). */
    this.conversations = new Conversations(this, (method, path, o) => this.#json(method, path, o));
  }

  /** The URL of an API path on this server. */
  url(path) {
    return this.baseURL.replace(/\/+$/, '') + path;
  }

  /** The headers of a request: the client's, its key, then extra. */
  requestHeaders(extra = {}) {
    const h = { ...this.headers };
    if (this.apiKey) h.Authorization = `Bearer ${this.apiKey}`;
    return { ...h, ...extra };
  }

  /**
   * Sends a request with a JSON body (when body is given) and resolves to
   * the JSON answer, or to the Response itself with raw; an error status
   * throws its SluiceError.
   */
  async #json(method, path, { body, signal, keepalive, raw } = {}) {
    const init = {
      method,
      headers: this.requestHeaders(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    };
    if (keepalive) init.keepalive = true;
    const res = await this.fetch(this.url(path), init);
    if (!res.ok) throw await errorOf(res);
    return raw ? res : res.json();
  }

  /** GET /v1/models: the model objects ({id, object, created, owned_by, …}). */
  async models({ signal } = {}) {
    return (await this.#json('GET', '/v1/models', { signal })).data ?? [];
  }

  /**
   * Starts a streamed chat completion and returns its ChatStream at once.
   * body is the OpenAI request (model, messages, …); stream is set to true.
   * Options: the ChatStream callbacks (onOpen, onDelta, onChunk, onState),
   * signal, retry, and cancelOnDisconnect (the server stops the answer
   * when this client's connection drops, instead of keeping it for a
   * resume).
   */
  chat(body, opts = {}) {
    const headers = { 'Content-Type': 'application/json' };
    if (opts.cancelOnDisconnect) headers['Sluice-Cancel-On-Disconnect'] = 'true';
    const first = { method: 'POST', path: '/v1/chat/completions', headers, body: JSON.stringify({ ...body, stream: true }) };
    return new ChatStream(this, { ...opts, retry: this.retryPolicy(opts.retry), id: null, lastEventId: '' }, first);
  }

  /**
   * Attaches to the chat stream id after the event lastEventId ('' for its
   * start): after a reload, in another tab, or in another process. Pass the
   * text already shown as opts.text so that stream.text stays the whole
   * answer. Options are those of chat.
   */
  attach(id, lastEventId = '', opts = {}) {
    return new ChatStream(this, { ...opts, retry: this.retryPolicy(opts.retry), id, lastEventId });
  }

  /**
   * POST /v1/streams/{id}/cancel: stops a generation. Its readers get its
   * closing event. Resolves to {id, object, status}.
   */
  cancel(id, { signal } = {}) {
    return this.#json('POST', `/v1/streams/${encodeURIComponent(id)}/cancel`, { signal });
  }

  /**
   * Subscribes to a topic and returns the Subscription at once. Options:
   * from: 'start' (every event the topic keeps, then new ones) or
   * lastEventId (the events after it); neither: only events published from
   * now on. onEvent, onState, signal, retry (by default a subscription
   * never stops reconnecting).
   */
  subscribe(topic, opts = {}) {
    return new Subscription(this, topic, { ...opts, retry: this.retryPolicy({ maxAttempts: Infinity, ...opts.retry }) });
  }

  /**
   * Publishes one event on a topic: data is a string, sent as it is, or any
   * JSON value, sent as JSON text; event optionally names it. Resolves to
   * {id, topic, object}.
   */
  publish(topic, data, { event, signal } = {}) {
    const body = event ? { event, data } : { data };
    return this.#json('POST', `/v1/topics/${encodeURIComponent(topic)}/events`, { body, signal });
  }

  /** The whole retry policy of a call: the defaults, the client's, then over. */
  retryPolicy(over = {}) {
    return { ...defaultRetry, ...this.retry, ...over };
  }
}
