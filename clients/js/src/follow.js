// follow.js: reads one of Sluice's event streams across as many
// connections as it takes. Every event of a Sluice stream carries an ID,
// and a reader that comes back with the last one it saw (Last-Event-ID)
// gets exactly what follows it; so when a connection drops, or goes
// silent for longer than the server's heartbeats allow, the Follower opens
// another one after a backoff with jitter and goes on, and its reader sees
// one unbroken sequence of events. It stops for good on the stream's final
// event, on 204 (nothing more will come), on 404 (the stream is gone), on
// a refusal that waiting would not change, and when its signal aborts.

import { createParser } from './parse.js';
import { ConnectionError, SluiceError, errorOf, messageOf, retryAfterOf } from './errors.js';

/** The default reconnect policy; SluiceClient and each call can override any field. */
export const defaultRetry = Object.freeze({
  initialDelay: 250, // ms before the first reconnect
  maxDelay: 10_000, // the backoff never waits longer (nor longer than the server's retry:)
  maxAttempts: 12, // reconnects in a row without an event before giving up
  idleTimeout: 45_000, // no byte, not even a heartbeat, for this long: reconnect
});

/**
 * The delay before reconnect number attempt (1, 2, …): exponential from
 * initialDelay, capped at maxDelay, with "equal jitter" (between half and
 * all of it) so that many clients cut at once do not come back at once.
 */
export function backoff(attempt, { initialDelay, maxDelay }, random = Math.random) {
  const cap = Math.min(maxDelay, initialDelay * 2 ** Math.min(attempt - 1, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** Statuses worth another try after a wait: the server is busy or away. */
const RETRY_GET = [429, 502, 503, 504];
/**
 * A request that starts something (a chat POST) is sent again only when
 * it was refused before it started anything: 503, the node is full or
 * draining. A 429 is this caller's own limit, which the caller should see.
 */
const RETRY_POST = [503];

/**
 * Follower reads one stream. Options:
 *   client    the SluiceClient (fetch, url, requestHeaders)
 *   first     the request that opens the stream: {method, path, body, headers}
 *   resume    (lastEventId) => the request that continues after that event
 *   lastEventId  where the stream starts, if the first request says so too
 *   isEnd     (event) => whether it is the stream's final event
 *   expires   a 404 to a GET means the stream is gone ('expired')
 *   retry     the policy, complete (see defaultRetry)
 *   signal    aborts everything; next() then rejects with its reason
 *   onOpen    (response) called once, when the first request is answered 200
 *   onState   (state, info): 'open' | 'resumed' {lastEventId}
 *             | 'reconnecting' {attempt, delay, reason}
 *
 * next() returns the next event ({id, event, data}) or null when the
 * stream has ended; it reads the network only when asked, so a reader that
 * takes its time holds the connection back rather than filling memory.
 * Events named sluice.resume (the server asking a lagging reader to
 * reconnect, which it then does) are not returned. Not safe for concurrent
 * next() calls.
 */
export class Follower {
  /** The ID of the last event read from the network: where a reconnect resumes. */
  lastEventId;
  #o;
  #signal;
  #queue = [];
  #reader = null;
  #conn = null;
  #unlink = () => {};
  #progressed = false;
  #opened = false;
  #ended = false;
  #attempt = 0;
  #reason = '';
  #cause = undefined;
  #minDelay = 0;
  #serverRetry = null;

  constructor(o) {
    this.#o = o;
    this.#signal = o.signal;
    this.lastEventId = o.lastEventId ?? '';
  }

  async next() {
    for (;;) {
      if (this.#queue.length) return this.#queue.shift();
      if (this.#ended) return null;
      this.#signal.throwIfAborted();
      if (this.#reader) await this.#pump();
      else await this.#connect();
    }
  }

  /** Stops reading: closes the connection; next() returns null from now on. */
  close() {
    this.#ended = true;
    this.#hangUp();
  }

  #hangUp() {
    this.#reader?.cancel().catch(() => {});
    this.#reader = null;
    this.#conn?.abort();
    this.#conn = null;
    this.#unlink();
  }

  /** Ends the connection being read, and says why, for the next attempt. */
  #drop(reason, cause) {
    this.#hangUp();
    this.#attempt = this.#progressed ? 1 : this.#attempt + 1;
    this.#reason = reason;
    this.#cause = cause;
  }

  #limits() {
    const r = this.#o.retry;
    const maxDelay = this.#serverRetry == null ? r.maxDelay : Math.min(r.maxDelay, this.#serverRetry);
    return { initialDelay: r.initialDelay, maxDelay };
  }

  /** Reads one piece of the body into the queue, or drops the connection. */
  async #pump() {
    const { idleTimeout } = this.#o.retry;
    const conn = this.#conn;
    let idle = false;
    const timer = setTimeout(() => {
      idle = true;
      conn.abort();
    }, idleTimeout);
    let r;
    try {
      r = await this.#reader.read();
    } catch (err) {
      this.#signal.throwIfAborted();
      if (this.#ended) return;
      this.#drop(idle ? `no data for ${idleTimeout} ms` : messageOf(err), err);
      return;
    } finally {
      clearTimeout(timer);
    }
    if (this.#ended) return;
    if (r.done) {
      this.#drop('the connection closed before the stream ended');
      return;
    }
    this.#feed(r.value);
  }

  #feed(bytes) {
    this.#parser.feed(this.#decoder.decode(bytes, { stream: true }));
  }

  #decoder = null;
  #parser = null;

  /** A parser for one connection: a cut one may leave half an event behind. */
  #newParser() {
    this.#decoder = new TextDecoder();
    this.#parser = createParser({
      onEvent: (ev) => {
        if (this.#ended) return;
        this.#progressed = true;
        this.lastEventId = ev.id;
        if (ev.event === 'sluice.resume') return;
        this.#queue.push(ev);
        if (this.#o.isEnd?.(ev)) {
          this.#ended = true;
          this.#hangUp();
        }
      },
      onRetry: (ms) => (this.#serverRetry = ms),
    });
  }

  /** Waits as the policy says, then opens a connection (or learns why not). */
  async #connect() {
    const o = this.#o;
    if (this.#attempt > 0) {
      if (this.#attempt > o.retry.maxAttempts) {
        throw new ConnectionError(`The connection to Sluice was lost (${this.#reason}).`, { cause: this.#cause });
      }
      const delay = Math.max(backoff(this.#attempt, this.#limits()), this.#minDelay);
      this.#minDelay = 0;
      o.onState?.('reconnecting', { attempt: this.#attempt, delay, reason: this.#reason });
      await sleep(delay, this.#signal);
      await online(this.#signal);
      this.#signal.throwIfAborted();
    }
    const req = this.#opened ? o.resume(this.lastEventId) : o.first;
    const conn = new AbortController();
    const unlink = link(this.#signal, conn);
    let res;
    try {
      res = await o.client.fetch(o.client.url(req.path), {
        method: req.method,
        headers: o.client.requestHeaders({ Accept: 'text/event-stream', ...req.headers }),
        body: req.body,
        signal: conn.signal,
        cache: 'no-store',
      });
    } catch (err) {
      unlink();
      this.#signal.throwIfAborted();
      if (req.method !== 'GET') {
        // It may or may not have started an answer: sending it again could
        // start a second one. The caller decides.
        throw new ConnectionError(`Could not reach Sluice (${messageOf(err)}).`, { cause: err });
      }
      this.#progressed = false;
      this.#drop(messageOf(err), err);
      return;
    }
    if (this.#ended) {
      // close() was called while the request was on its way.
      res.body?.cancel().catch(() => {});
      unlink();
      return;
    }
    if (res.status === 200 && /^text\/event-stream\b/i.test(res.headers.get('Content-Type') ?? '')) {
      const resumed = this.#opened;
      this.#opened = true;
      this.#conn = conn;
      this.#unlink = unlink;
      this.#reader = res.body.getReader();
      this.#progressed = false;
      this.#newParser();
      if (!resumed) o.onOpen?.(res);
      o.onState?.(resumed ? 'resumed' : 'open', { lastEventId: this.lastEventId });
      return;
    }
    try {
      if (res.status === 204 && req.method === 'GET') {
        this.#ended = true; // already past the stream's last event
        return;
      }
      if (res.status === 404 && req.method === 'GET' && o.expires) {
        const gone = await errorOf(res);
        throw new SluiceError('This stream is no longer kept on the server, so the rest of it cannot be read.', {
          status: 404,
          code: 'expired',
          error: gone.error,
        });
      }
      if ((req.method === 'GET' ? RETRY_GET : RETRY_POST).includes(res.status)) {
        this.#progressed = false;
        this.#drop(`HTTP ${res.status}`);
        this.#minDelay = retryAfterOf(res);
        return;
      }
      if (res.status === 200) {
        throw new SluiceError(`Expected an event stream, got ${res.headers.get('Content-Type') || 'no Content-Type'}.`, { status: 200 });
      }
      throw await errorOf(res);
    } finally {
      res.body?.cancel().catch(() => {});
      unlink();
    }
  }
}

/** Aborts conn when signal aborts; returns the function that unlinks them. */
function link(signal, conn) {
  if (signal.aborted) {
    conn.abort(signal.reason);
    return () => {};
  }
  const onAbort = () => conn.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

/** Resolves after ms, or at once when signal aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** In a browser that knows it is offline, waits until it is online again. */
function online(signal) {
  if (typeof navigator === 'undefined' || navigator.onLine !== false || typeof addEventListener !== 'function') {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      removeEventListener('online', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    addEventListener('online', done);
    signal.addEventListener('abort', done, { once: true });
  });
}
