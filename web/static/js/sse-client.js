// sse-client.js: Sluice's streaming client. It has no dependencies and no
// DOM code, so it runs in any browser (and in Node 18+) and can become a
// published package as it is.
//
// A chat answer is started with a fetch POST to /v1/chat/completions and
// its Server-Sent Events body is read chunk by chunk, the way
// fetchEventSource does: EventSource itself cannot POST. The response names
// its stream in the Sluice-Stream-ID header and every event carries an id,
// so when the connection drops the client reconnects on its own with
// GET /v1/streams/{id} and Last-Event-ID, with exponential backoff and
// jitter, and the answer continues with nothing lost or doubled. The same
// resume attaches to a running answer after a page reload, given the stream
// ID and the last event ID that the page kept.
//
//   import { SluiceClient } from './sse-client.js';
//   const client = new SluiceClient();
//   const stream = client.chat({ model: 'demo', messages }, {
//     onDelta: (text) => out.append(text),
//     onState: (state, info) => console.log(state, info),
//   });
//   const result = await stream.done; // { status: 'done' | 'cancelled' | ..., text }

/**
 * createParser returns a WHATWG "server-sent events" parser. Feed it decoded
 * text in chunks of any size; it calls onEvent({id, event, data}) for every
 * dispatched event, onRetry(ms) for every valid retry field and
 * onComment(text) for every comment line.
 */
export function createParser({ onEvent, onRetry, onComment } = {}) {
  let buf = '';
  let data = '';
  let event = '';
  let lastId = '';
  let started = false;

  function line(l) {
    if (l === '') {
      // Dispatch. The last event ID persists from event to event.
      if (data === '') {
        event = '';
        return;
      }
      const ev = { id: lastId, event: event || 'message', data: data.slice(0, -1) };
      data = '';
      event = '';
      onEvent?.(ev);
      return;
    }
    if (l[0] === ':') {
      onComment?.(l.slice(l[1] === ' ' ? 2 : 1));
      return;
    }
    const colon = l.indexOf(':');
    const field = colon < 0 ? l : l.slice(0, colon);
    let value = colon < 0 ? '' : l.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'event':
        event = value;
        break;
      case 'data':
        data += value + '\n';
        break;
      case 'id':
        if (!value.includes('\0')) lastId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) onRetry?.(Number(value));
        break;
    }
  }

  return {
    /** Feeds the next piece of decoded text. */
    feed(text) {
      if (!started && text.length > 0) {
        started = true;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
      buf += text;
      let start = 0;
      for (;;) {
        const cr = buf.indexOf('\r', start);
        const lf = buf.indexOf('\n', start);
        let end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
        if (end < 0) break;
        let next = end + 1;
        if (buf[end] === '\r') {
          // A CR at the very end may be the first half of CRLF.
          if (end === buf.length - 1) break;
          if (buf[end + 1] === '\n') next++;
        }
        line(buf.slice(start, end));
        start = next;
      }
      buf = buf.slice(start);
    },
  };
}

/** An error that Sluice reported, in OpenAI's shape, or a network failure. */
export class SluiceError extends Error {
  constructor(message, { code = null, type = null, status = 0 } = {}) {
    super(message);
    this.name = 'SluiceError';
    this.code = code;
    this.type = type;
    this.status = status;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Waits until the browser says it is online again (or signal aborts). */
function online(signal) {
  if (typeof navigator === 'undefined' || navigator.onLine !== false || typeof addEventListener !== 'function') {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const done = () => {
      removeEventListener('online', done);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    addEventListener('online', done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

async function errorOf(res) {
  let message = `HTTP ${res.status}`;
  let code = null;
  let type = null;
  try {
    const body = await res.json();
    if (body?.error) {
      message = body.error.message || message;
      code = body.error.code ?? null;
      type = body.error.type ?? null;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new SluiceError(message, { code, type, status: res.status });
}

/** The default reconnect policy; every field can be overridden. */
export const defaultRetry = {
  initialDelay: 250, // ms before the first reconnect
  maxDelay: 10_000, // the backoff never waits longer (nor longer than the server's retry:)
  maxAttempts: 12, // reconnects in a row without progress before giving up
  idleTimeout: 45_000, // no byte (not even a heartbeat) for this long: reconnect
};

/**
 * The delay before reconnect number attempt (1, 2, …): exponential from
 * initialDelay, capped, with "equal jitter" (between half and all of it) so
 * that many clients cut at once do not come back at once.
 */
export function backoff(attempt, { initialDelay, maxDelay }, random = Math.random) {
  const cap = Math.min(maxDelay, initialDelay * 2 ** Math.min(attempt - 1, 20));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/**
 * ChatStream is one chat answer being read. Make one with SluiceClient.chat
 * or SluiceClient.resume. Its fields are updated as events arrive:
 * id (the stream ID), lastEventId, text (the answer so far), finishReason.
 *
 * Callbacks (all optional), given in the options:
 *   onOpen(stream)            the stream ID is known
 *   onDelta(text, chunk, stream)   new answer text (chunk is the parsed JSON)
 *   onChunk(chunk, stream)    every chat.completion.chunk, with or without text
 *   onState(state, info)      'open' | 'reconnecting' {attempt, delay, reason}
 *                             | 'resumed' {lastEventId} | 'closed'
 * done resolves (never rejects) to {status, text, error?, finishReason?}
 * where status is 'done', 'cancelled', 'error', 'expired' (the server no
 * longer has the stream), 'failed' (the network stayed down) or 'aborted'
 * (abort() was called).
 */
export class ChatStream {
  #client;
  #opts;
  #retry;
  #abort = new AbortController();
  #stopping = false;
  #serverRetry = null;
  #resolve;
  #finished = false;
  #idleTimer = 0;

  constructor(client, opts = {}) {
    this.#client = client;
    this.#opts = opts;
    this.#retry = { ...defaultRetry, ...opts.retry };
    this.id = opts.id ?? null;
    this.lastEventId = opts.lastEventId ?? '';
    this.text = opts.text ?? '';
    this.finishReason = null;
    this.done = new Promise((r) => (this.#resolve = r));
  }

  /**
   * Stops the answer on the server (POST /v1/streams/{id}/cancel) and keeps
   * reading until the server's closing event, so that text holds exactly
   * what the server generated. done then resolves with status 'cancelled'
   * (or 'done', if the answer had already ended).
   */
  stop() {
    if (this.#finished || this.#stopping) return;
    this.#stopping = true;
    if (this.id) this.#cancelOnServer();
    // Do not wait long for the closing event of a slow connection.
    setTimeout(() => this.#finish('cancelled'), 3000);
  }

  /** Stops reading here without stopping the answer on the server. */
  abort() {
    this.#finish('aborted');
  }

  #cancelOnServer() {
    this.#client.cancel(this.id).catch(() => {
      // The generation may have ended already or the server be away; the
      // read loop reports what really happened.
    });
  }

  #state(state, info = {}) {
    this.#opts.onState?.(state, info);
  }

  #finish(status, extra = {}) {
    if (this.#finished) return;
    this.#finished = true;
    this.#abort.abort();
    this.#state('closed', { status });
    this.#resolve({ status, text: this.text, finishReason: this.finishReason, ...extra });
  }

  /** Handles one SSE event; returns true once the stream has ended. */
  #event(ev) {
    if (ev.id) this.lastEventId = ev.id;
    if (ev.data === '[DONE]') {
      this.#finish('done');
      return true;
    }
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return false; // not ours to judge: ignore what is not JSON
    }
    if (msg?.error) {
      const e = msg.error;
      const err = new SluiceError(e.message || 'The answer failed.', { code: e.code, type: e.type });
      this.#finish(e.code === 'cancelled' ? 'cancelled' : 'error', { error: err });
      return true;
    }
    this.#opts.onChunk?.(msg, this);
    const choice = msg?.choices?.[0];
    if (choice?.finish_reason) this.finishReason = choice.finish_reason;
    const delta = choice?.delta?.content;
    if (typeof delta === 'string' && delta !== '') {
      this.text += delta;
      this.#opts.onDelta?.(delta, msg, this);
    }
    return false;
  }

  /** Runs the stream: first request, then reconnects until it ends. */
  async run(first) {
    let req = first;
    let attempt = 0;
    const signal = this.#abort.signal;
    while (!this.#finished) {
      const conn = new AbortController();
      const onAbort = () => conn.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      let progressed = false;
      let reason;
      try {
        const res = await this.#client.fetch(req.url(), {
          method: req.method,
          headers: req.headers(),
          body: req.body,
          signal: conn.signal,
          cache: 'no-store',
        });
        if (req.method === 'POST' && res.ok) {
          this.id = res.headers.get('Sluice-Stream-ID') || this.id;
        }
        const outcome = await this.#response(res, req);
        if (outcome === 'ended') return;
        if (outcome === 'retry-after') {
          reason = `HTTP ${res.status}`;
          const ra = Number(res.headers.get('Retry-After'));
          if (ra > 0) req.minDelay = ra * 1000;
        } else {
          progressed = await this.#read(res, conn);
          if (this.#finished) return;
          reason = 'the connection closed before the answer ended';
        }
      } catch (err) {
        if (this.#finished) return;
        reason = err?.name === 'AbortError' ? 'no data for too long' : err?.message || String(err);
        if (err instanceof SluiceError) return this.#finish('error', { error: err });
      } finally {
        signal.removeEventListener('abort', onAbort);
        clearTimeout(this.#idleTimer);
      }
      if (this.#finished) return;
      if (this.#stopping) return this.#finish('cancelled');
      if (!this.id) {
        // The request never got as far as naming its stream: there is
        // nothing to resume, and sending it again could start a second
        // answer. Let the person decide.
        return this.#finish('error', {
          error: new SluiceError(`Could not reach Sluice (${reason}).`, { code: 'network' }),
        });
      }
      attempt = progressed ? 1 : attempt + 1;
      if (attempt > this.#retry.maxAttempts) {
        return this.#finish('failed', {
          error: new SluiceError(`The connection was lost (${reason}).`, { code: 'network' }),
        });
      }
      const limits = { ...this.#retry };
      if (this.#serverRetry != null) limits.maxDelay = Math.max(limits.initialDelay, Math.min(limits.maxDelay, this.#serverRetry));
      const delay = Math.max(backoff(attempt, limits), req.minDelay ?? 0);
      this.#state('reconnecting', { attempt, delay, reason });
      await sleep(delay, signal);
      await online(signal);
      req = this.#resumeRequest();
    }
  }

  /**
   * Looks at a response's status: returns 'ended' when the stream is over,
   * 'retry-after' when the server asked to come back later, 'read' when the
   * body is the event stream.
   */
  async #response(res, req) {
    const resume = req.method === 'GET';
    if (res.status === 200) {
      this.#state(resume ? 'resumed' : 'open', { id: this.id, lastEventId: this.lastEventId });
      if (!resume) this.#opts.onOpen?.(this);
      if (this.#stopping && !resume) this.#cancelOnServer();
      return 'read';
    }
    if (resume && res.status === 204) {
      // The reader is past the last event: the answer has ended.
      this.#finish(this.#stopping ? 'cancelled' : 'done');
      return 'ended';
    }
    if (resume && res.status === 404) {
      this.#finish('expired', {
        error: new SluiceError('This answer is no longer kept on the server, so the rest of it cannot be loaded.', {
          code: 'expired',
          status: 404,
        }),
      });
      return 'ended';
    }
    if (resume && [429, 502, 503, 504].includes(res.status)) return 'retry-after';
    throw await errorOf(res);
  }

  /** Reads an event-stream body; reports whether any event arrived. */
  async #read(res, conn) {
    let progressed = false;
    const parser = createParser({
      onEvent: (ev) => {
        progressed = true;
        this.#event(ev);
      },
      onRetry: (ms) => (this.#serverRetry = ms),
    });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const idle = () => {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = setTimeout(() => conn.abort(), this.#retry.idleTimeout);
    };
    idle();
    try {
      while (!this.#finished) {
        const { value, done } = await reader.read();
        if (done) break;
        idle();
        parser.feed(decoder.decode(value, { stream: true }));
      }
    } catch (err) {
      if (this.#finished) return progressed;
      if (!progressed) throw err;
    } finally {
      reader.cancel().catch(() => {});
    }
    return progressed;
  }

  #resumeRequest() {
    const id = encodeURIComponent(this.id);
    return {
      method: 'GET',
      url: () => this.#client.url(`/v1/streams/${id}`),
      headers: () => ({
        Accept: 'text/event-stream',
        ...this.#client.headers,
        ...(this.lastEventId ? { 'Last-Event-ID': this.lastEventId } : {}),
      }),
    };
  }

  /** Resumes from lastEventId: used by SluiceClient.resume. */
  start(first) {
    this.run(first ?? this.#resumeRequest()).catch((err) => this.#finish('error', { error: err }));
    return this;
  }
}

/**
 * SluiceClient talks to one Sluice server. baseURL is '' for the page's own
 * origin; headers are added to every request (an Authorization header, for
 * example); fetch can be swapped for tests or other runtimes.
 */
export class SluiceClient {
  constructor({ baseURL = '', headers = {}, fetch: f } = {}) {
    this.baseURL = baseURL.replace(/\/+$/, '');
    this.headers = headers;
    this.fetch = f ?? ((...args) => globalThis.fetch(...args));
  }

  url(p) {
    return this.baseURL + p;
  }

  /** GET /v1/models: the list of model objects. */
  async models({ signal } = {}) {
    const res = await this.fetch(this.url('/v1/models'), { headers: this.headers, signal });
    if (!res.ok) throw await errorOf(res);
    return (await res.json()).data ?? [];
  }

  /**
   * Starts a streamed chat completion. body is the OpenAI request (model,
   * messages, …); stream is set to true. Returns a ChatStream at once.
   */
  chat(body, opts = {}) {
    const s = new ChatStream(this, opts);
    const json = JSON.stringify({ ...body, stream: true });
    s.start({
      method: 'POST',
      url: () => this.url('/v1/chat/completions'),
      headers: () => ({ 'Content-Type': 'application/json', Accept: 'text/event-stream', ...this.headers }),
      body: json,
    });
    return s;
  }

  /**
   * Attaches to stream id after the event lastEventId ('' for the start),
   * as after a reload. Pass the text already shown as opts.text so that
   * stream.text stays the whole answer.
   */
  resume(id, lastEventId = '', opts = {}) {
    return new ChatStream(this, { ...opts, id, lastEventId }).start();
  }

  /** POST /v1/streams/{id}/cancel: answers {id, object, status}. */
  async cancel(id) {
    const res = await this.fetch(this.url(`/v1/streams/${encodeURIComponent(id)}/cancel`), {
      method: 'POST',
      headers: this.headers,
    });
    if (!res.ok) throw await errorOf(res);
    return res.json();
  }
}
