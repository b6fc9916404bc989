// ws-client.js: the chat streams of @sluice-dev/client (clients/js, served
// under ./sluice/) over Sluice's WebSocket (GET /ws; its protocol is in the
// server's ws/doc.go), with the same ChatStream interface as far as the
// chat page uses it (callbacks and done), so that the page can use either
// transport.
//
// An answer is started with a chat.start message; its events come as
// frames carrying the same IDs as SSE's. When the connection drops, the
// client opens a new one with the client's backoff policy and sends
// stream.attach with the last event ID it saw: the answer continues with
// nothing lost or doubled. That is the one thing SSE gives for free
// (EventSource reconnects by itself with Last-Event-ID) and a WebSocket
// client must write.
//
// A browser cannot set Authorization on a WebSocket, so the API key of the
// client's requests travels as a subprotocol ("sluice.key.<base64url>") beside
// "sluice", which the server selects: never in the URL.
//
// Each answer has a connection of its own, as each has a request of its
// own over SSE; the protocol would let them share one.
//
//   import { SluiceWSClient } from './ws-client.js';
//   const client = new SluiceWSClient();
//   const stream = client.chat({ model: 'demo', messages }, { onDelta: (t) => out.append(t) });

import { SluiceClient, SluiceError, backoff, defaultRetry } from './sluice/index.js';

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });

/** The subprotocols to offer: "sluice", and the API key of headers' Authorization when there is one. */
export function protocolsFor(headers) {
  const m = /^Bearer\s+(.+)$/i.exec(headers?.Authorization ?? '');
  if (!m) return ['sluice'];
  let bin = '';
  for (const b of new TextEncoder().encode(m[1].trim())) bin += String.fromCharCode(b);
  return ['sluice', 'sluice.key.' + btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')];
}

/** Codes of /ws errors after which an attach is tried again later. */
const retryable = new Set(['rate_limit_exceeded', 'too_many_streams', 'server_full', 'server_shutting_down']);

/**
 * WSChatStream is ChatStream (see clients/js/src/chat.js) over /ws: the same
 * fields, callbacks, states and done result.
 */
export class WSChatStream {
  #client;
  #opts;
  #retry;
  #resolve;
  #finished = false;
  #stopping = false;
  #ws = null;
  #stop = new AbortController();

  constructor(client, opts = {}) {
    this.#client = client;
    this.#opts = opts;
    this.#retry = { ...defaultRetry, ...opts.retry };
    this.id = opts.id ?? null;
    this.conversationId = null;
    this.messageId = null;
    this.lastEventId = opts.lastEventId ?? '';
    this.text = opts.text ?? '';
    this.finishReason = null;
    this.usage = null;
    this.status = null;
    this.done = new Promise((r) => (this.#resolve = r));
  }

  /** Stops the answer on the server and reads on to its closing event. */
  stop() {
    if (this.#finished || this.#stopping) return;
    this.#stopping = true;
    if (this.id) this.#cancelOnServer();
    setTimeout(() => this.#finish('cancelled'), 3000);
  }

  /** Stops reading here without stopping the answer on the server. */
  abort() {
    this.#finish('aborted');
  }

  #cancelOnServer() {
    if (this.#ws?.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify({ type: 'stream.cancel', id: 'cancel', stream: this.id }));
      return;
    }
    this.#client.cancel(this.id).catch(() => {});
  }

  #state(state, info = {}) {
    this.#opts.onState?.(state, { id: this.id, ...info });
  }

  #finish(status, extra = {}) {
    if (this.#finished) return;
    this.#finished = true;
    this.status = status;
    this.#stop.abort();
    if (this.#ws && this.#ws.readyState <= WebSocket.OPEN) this.#ws.close(1000);
    this.#state('closed', { id: this.id, status });
    this.#resolve({ status, text: this.text, finishReason: this.finishReason, usage: this.usage, ...extra });
  }

  /** Handles one event frame; returns true once the stream has ended. */
  #event(f) {
    if (f.id) this.lastEventId = f.id;
    if (f.event) return false; // not a chunk: a gap, or a name a later Sluice may add
    if (f.data === '[DONE]') {
      this.#finish('done');
      return true;
    }
    let msg;
    try {
      msg = JSON.parse(f.data);
    } catch {
      // Never skip what might be part of the answer: say it is broken.
      this.#finish('error', { error: new SluiceError(`Event ${f.id} is not a chat.completion.chunk.`, { code: 'invalid_event' }) });
      return true;
    }
    if (msg?.error) {
      const e = msg.error;
      this.#finish(e.code === 'cancelled' ? 'cancelled' : 'error', { error: new SluiceError(e.message || 'The answer failed.', { error: e }) });
      return true;
    }
    this.#opts.onChunk?.(msg, this);
    const choice = msg?.choices?.[0];
    if (choice?.finish_reason) this.finishReason = choice.finish_reason;
    if (msg?.usage) this.usage = msg.usage;
    const delta = choice?.delta?.content;
    if (typeof delta === 'string' && delta !== '') {
      this.text += delta;
      this.#opts.onDelta?.(delta, msg, this);
    }
    return false;
  }

  /** Runs the stream: the first connection, then reconnects until it ends. */
  async run(body) {
    let attempt = 0;
    let start = body !== undefined;
    while (!this.#finished) {
      const { progressed, reason, retryAfter = 0 } = await this.#connect(start ? body : undefined);
      if (this.#finished) return;
      if (this.#stopping) return this.#finish('cancelled');
      if (!this.id) {
        // Nothing to resume; sending chat.start again could start a second
        // answer. Let the person decide.
        return this.#finish('error', { error: new SluiceError(`Could not reach Sluice (${reason}).`, { code: 'network' }) });
      }
      start = false;
      attempt = progressed ? 1 : attempt + 1;
      if (attempt > this.#retry.maxAttempts) {
        return this.#finish('failed', { error: new SluiceError(`The connection was lost (${reason}).`, { code: 'network' }) });
      }
      const delay = Math.max(backoff(attempt, this.#retry), retryAfter);
      this.#state('reconnecting', { attempt, delay, reason });
      await sleep(delay, this.#stop.signal);
    }
  }

  /**
   * Opens one connection and reads it until it closes. It sends chat.start
   * with body, or else stream.attach after lastEventId, and resolves to
   * whether any event came, why it closed and how long to wait before the
   * next try.
   */
  #connect(body) {
    return new Promise((resolve) => {
      let progressed = false;
      let retryAfter = 0;
      let reason = 'the connection closed before the answer ended';
      const ws = new WebSocket(this.#client.wsURL(), protocolsFor(this.#client.requestHeaders()));
      this.#ws = ws;
      ws.onopen = () => {
        const msg = body !== undefined
          ? { type: 'chat.start', id: 'start', body }
          : { type: 'stream.attach', id: 'attach', stream: this.id, last_event_id: this.lastEventId };
        ws.send(JSON.stringify(msg));
      };
      ws.onmessage = (m) => {
        let f;
        try {
          f = JSON.parse(m.data);
        } catch {
          return;
        }
        switch (f.type) {
          case 'started':
            this.id = f.stream;
            // A chat that continues a conversation: where its answer is stored.
            this.conversationId = f.conversation || null;
            this.messageId = f.message || null;
            this.#state('open', { id: this.id, lastEventId: this.lastEventId });
            this.#opts.onOpen?.(this);
            if (this.#stopping) this.#cancelOnServer();
            break;
          case 'subscribed':
            this.#state('resumed', { id: this.id, lastEventId: this.lastEventId });
            break;
          case 'event':
            progressed = true;
            this.#event(f);
            break;
          case 'unsubscribed':
            if (f.reason === 'ended') this.#finish(this.#stopping ? 'cancelled' : 'done');
            else reason = f.reason || 'the server ended the subscription';
            ws.close(1000);
            break;
          case 'error': {
            const e = f.error ?? {};
            const err = new SluiceError(e.message || 'The request failed.', { error: e });
            if (f.id === 'cancel') break; // the answer ends, or has ended, by itself
            if (f.id === 'attach' && e.code === 'not_found') {
              this.#finish('expired', {
                error: new SluiceError('This answer is no longer kept on the server, so the rest of it cannot be loaded.', { code: 'expired', status: 404 }),
              });
            } else if (f.id === 'attach' && retryable.has(e.code)) {
              reason = e.message;
              retryAfter = 1000;
              ws.close(1000);
            } else {
              this.#finish('error', { error: err });
            }
            break;
          }
        }
      };
      ws.onclose = (ev) => {
        if (ev.code !== 1000 && ev.code !== 1005) reason = `the connection closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`;
        resolve({ progressed, reason, retryAfter });
      };
    });
  }
}

/**
 * SluiceWSClient is SluiceClient (models, cancel, topics over HTTP) whose
 * chat and attach stream over /ws.
 */
export class SluiceWSClient extends SluiceClient {
  /** The /ws URL: baseURL's, or the page's own origin's. */
  wsURL() {
    const base = new URL(this.baseURL || globalThis.location.origin, globalThis.location?.href);
    base.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    base.pathname = base.pathname.replace(/\/+$/, '') + '/ws';
    return base.href;
  }

  chat(body, opts = {}) {
    const s = new WSChatStream(this, { ...opts, retry: { ...this.retry, ...opts.retry } });
    s.run({ ...body, stream: true }).catch(() => s.abort());
    return s;
  }

  attach(id, lastEventId = '', opts = {}) {
    const s = new WSChatStream(this, { ...opts, retry: { ...this.retry, ...opts.retry }, id, lastEventId });
    s.run().catch(() => s.abort());
    return s;
  }
}
