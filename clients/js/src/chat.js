// chat.js: one chat answer being read, across drops and reloads.

import { ConnectionError, SluiceError, call } from './errors.js';
import { Follower } from './follow.js';

/** How long stop() waits for the server's closing event before giving up on it. */
const STOP_WAIT_MS = 3000;

/**
 * ChatStream is one chat answer being read. Make one with SluiceClient.chat
 * or SluiceClient.attach. Its fields follow the events as they arrive: id
 * (the stream ID, once Sluice has named it), conversationId and messageId
 * (a chat in a conversation: the assistant message the server stores;
 * null otherwise, and after attach), lastEventId (the ID of the
 * last event read: keep it beside text to attach after a reload), text
 * (the answer so far), finishReason, usage, and status (null until done).
 *
 * Read it with callbacks (options onOpen, onDelta, onChunk, onState), with
 * for await, which yields every chat.completion.chunk in order, or both.
 * Chunks are kept for the iterator from the start, so a loop that begins
 * late misses none; a ChatStream can be iterated once.
 *
 * done resolves, and never rejects, to {status, text, finishReason, usage,
 * error} once the stream has ended. status is 'done' (data: [DONE]),
 * 'cancelled' (stop() here, or a cancel elsewhere: error.code is then
 * 'cancelled'), 'error' (an error event, a refusal, or the first request
 * could not be sent), 'expired' (the server no longer keeps the stream),
 * 'failed' (the connection stayed down for every attempt of the retry
 * policy) or 'aborted' (abort() or the signal; the answer goes on on the
 * server). The iterator ends quietly after 'done' and after stop(), throws
 * the abort reason after 'aborted', and throws error otherwise, so that a
 * cut answer never passes for a whole one.
 */
export class ChatStream {
  #client;
  #opts;
  #follower;
  #ctl = new AbortController();
  #stopping = false;
  #stopTimer = 0;
  #finished = false;
  #result = null;
  #resolve;
  #queue = [];
  #wake = null;
  #iterated = false;
  #unlinkSignal = () => {};

  /** @internal Made by SluiceClient; first is the request that opens the stream. */
  constructor(client, opts, first) {
    this.#client = client;
    this.#opts = opts;
    this.id = opts.id ?? null;
    this.conversationId = null;
    this.messageId = null;
    this.lastEventId = opts.lastEventId ?? '';
    this.text = opts.text ?? '';
    this.finishReason = null;
    this.usage = null;
    this.status = null;
    this.done = new Promise((r) => (this.#resolve = r));
    this.#follower = new Follower({
      client,
      first: first ?? this.#resumeRequest(this.lastEventId),
      resume: (after) => this.#resumeRequest(after),
      lastEventId: this.lastEventId,
      isEnd: (ev) => ev.event === 'message' && (ev.data === '[DONE]' || ev.data.startsWith('{"error"')),
      expires: true,
      retry: opts.retry,
      signal: this.#ctl.signal,
      onOpen: (res) => this.#opened(res),
      onState: (state, info) => this.#state(state, info),
    });
    const signal = opts.signal;
    if (signal?.aborted) {
      this.abort();
      return;
    }
    if (signal) {
      const onAbort = () => this.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unlinkSignal = () => signal.removeEventListener('abort', onAbort);
    }
    this.#run();
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
    // else: cancelled as soon as the server names the stream (#opened).
    this.#stopTimer = setTimeout(() => this.#finish('cancelled'), STOP_WAIT_MS);
  }

  /** Stops reading here, without stopping the answer on the server. */
  abort() {
    this.#finish('aborted');
  }

  [Symbol.asyncIterator]() {
    if (this.#iterated) throw new TypeError('A ChatStream can be iterated only once.');
    this.#iterated = true;
    const it = {
      next: async () => {
        for (;;) {
          if (this.#queue.length) return { value: this.#queue.shift(), done: false };
          if (this.#finished) return this.#end();
          await new Promise((r) => (this.#wake = r));
        }
      },
      // break, return or throw in a for await loop: stop reading.
      return: async () => {
        this.abort();
        this.#queue.length = 0;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  #end() {
    const r = this.#result;
    if (r.status === 'done' || (r.status === 'cancelled' && this.#stopping)) return { value: undefined, done: true };
    if (r.status === 'aborted') {
      throw this.#opts.signal?.reason ?? new DOMException('The stream was aborted.', 'AbortError');
    }
    throw r.error;
  }

  #resumeRequest(after) {
    if (!this.id) {
      throw new ConnectionError('The connection was lost before Sluice named the stream, so it cannot be resumed.');
    }
    return {
      method: 'GET',
      path: `/v1/streams/${encodeURIComponent(this.id)}`,
      headers: after ? { 'Last-Event-ID': after } : {},
    };
  }

  #opened(res) {
    this.id = res.headers.get('Sluice-Stream-ID') || this.id;
    this.conversationId = res.headers.get('Sluice-Conversation-ID') || null;
    this.messageId = res.headers.get('Sluice-Message-ID') || null;
    if (this.#stopping && this.id) this.#cancelOnServer();
    call(this.#opts.onOpen, this);
  }

  #state(state, info) {
    call(this.#opts.onState, state, { id: this.id, ...info });
  }

  #cancelOnServer() {
    this.#client.cancel(this.id).catch(() => {
      // The answer may have ended already, or the server be away; the
      // stream reports what really happened.
    });
  }

  async #run() {
    try {
      for (;;) {
        const ev = await this.#follower.next();
        if (ev === null) return this.#finish(this.#stopping ? 'cancelled' : 'done'); // 204: nothing more
        this.#event(ev);
        if (this.#finished) return;
      }
    } catch (err) {
      if (this.#finished) return;
      if (err?.code === 'expired') return this.#finish('expired', { error: err });
      if (err instanceof ConnectionError && this.id) return this.#finish(this.#stopping ? 'cancelled' : 'failed', { error: err });
      if (err instanceof SluiceError) return this.#finish('error', { error: err });
      this.#finish('error', { error: new SluiceError(err?.message || String(err), { cause: err }) });
    } finally {
      this.#follower.close();
    }
  }

  /** Takes one event of the stream. */
  #event(ev) {
    if (ev.event !== 'message') return; // names a later Sluice may add
    this.lastEventId = ev.id;
    if (ev.data === '[DONE]') return this.#finish('done');
    let chunk;
    try {
      chunk = JSON.parse(ev.data);
    } catch {
      // Never skip what might be part of the answer: say it is broken.
      const err = new SluiceError(`Event ${ev.id} is not a chat.completion.chunk.`, { code: 'invalid_event' });
      return this.#finish('error', { error: err });
    }
    if (chunk?.error) {
      const e = chunk.error;
      const err = new SluiceError(e.message || 'The answer failed.', { error: e });
      return this.#finish(e.code === 'cancelled' ? 'cancelled' : 'error', { error: err });
    }
    const choice = chunk?.choices?.[0];
    if (choice?.finish_reason) this.finishReason = choice.finish_reason;
    if (chunk?.usage) this.usage = chunk.usage;
    const delta = choice?.delta?.content;
    if (typeof delta === 'string' && delta !== '') this.text += delta;
    this.#queue.push(chunk);
    this.#wakeUp();
    call(this.#opts.onChunk, chunk, this);
    if (typeof delta === 'string' && delta !== '') call(this.#opts.onDelta, delta, chunk, this);
  }

  #wakeUp() {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  #finish(status, extra = {}) {
    if (this.#finished) return;
    this.#finished = true;
    this.status = status;
    clearTimeout(this.#stopTimer);
    this.#unlinkSignal();
    this.#ctl.abort();
    this.#result = { status, text: this.text, finishReason: this.finishReason, usage: this.usage, ...extra };
    call(this.#opts.onState, 'closed', { id: this.id, status });
    this.#resolve(this.#result);
    this.#wakeUp();
  }
}
