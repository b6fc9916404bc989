// topic.js: a subscription to a topic, which follows it for as long as it
// is open, across drops, server restarts and shutdowns.

import { SluiceError, call } from './errors.js';
import { Follower } from './follow.js';

/**
 * The response header in which Sluice names the event a subscription
 * starts after. A subscription cut before its first event resumes from
 * there, so that nothing published meanwhile is missed.
 */
const START_HEADER = 'Sluice-Last-Event-ID';

/**
 * Subscription follows one topic. Make one with SluiceClient.subscribe.
 * lastEventId is the ID of the last event handed to the application (keep
 * it to subscribe again later from there); topic is the topic's name.
 *
 * With an onEvent option, every event is handed to it as it comes. Without
 * one, iterate the subscription with for await (once): the network is then
 * read only as fast as the loop takes events, and a loop too slow for a
 * busy topic is dropped by the server and resumes where it was, without
 * losing an event. The connection is opened at once either way.
 *
 * Events are {id, event, data}: event is 'message' unless the publisher
 * named it, data the text as published (JSON for non-string data). An event
 * named 'sluice.gap' says, in its JSON data {reason, missed, message}, that
 * the topic no longer had some events the subscription would have read
 * (reason 'trimmed', missed of them) or that the ID resumed from belongs to
 * an earlier incarnation of the topic ('replaced'); the events after it go on.
 *
 * opened resolves once the server has accepted the subscription, and
 * rejects if it refused it. done resolves, and never rejects, to
 * {status, error}: 'closed' (close()), 'aborted' (the signal) or 'error'
 * (a refusal, or the connection stayed down for every attempt the retry
 * policy allows: by default it never gives up).
 */
export class Subscription {
  #opts;
  #follower;
  #ctl = new AbortController();
  #finished = false;
  #result = null;
  #resolve;
  #iterated = false;
  #prefetch = null;
  #fromStart;
  #settleOpened = () => {};
  #unlinkSignal = () => {};

  /** @internal Made by SluiceClient.subscribe. */
  constructor(client, topic, opts) {
    this.#opts = opts;
    this.topic = topic;
    this.lastEventId = opts.lastEventId ?? '';
    this.#fromStart = opts.from === 'start';
    this.done = new Promise((r) => (this.#resolve = r));
    let opened, refused;
    this.opened = new Promise((resolve, reject) => {
      opened = resolve;
      refused = reject;
    });
    this.opened.catch(() => {}); // reported by done as well; awaiting it is optional
    // opts.path: another of Sluice's resumable feeds (the conversations' one).
    const path = opts.path ?? `/v1/topics/${encodeURIComponent(topic)}/events`;
    this.#follower = new Follower({
      client,
      first: this.#request(path, this.lastEventId),
      resume: (after) => this.#request(path, after),
      lastEventId: this.lastEventId,
      retry: opts.retry,
      signal: this.#ctl.signal,
      onOpen: (res) => {
        const start = res.headers.get(START_HEADER);
        if (start !== null && !this.#follower.lastEventId) {
          if (start) this.#follower.lastEventId = start;
          else this.#fromStart = true; // the topic was empty: all of it is new
        }
        opened();
      },
      onState: (state, info) => call(opts.onState, state, info),
    });
    this.#settleOpened = refused;
    const signal = opts.signal;
    if (signal?.aborted) {
      this.#finish('aborted');
      return;
    }
    if (signal) {
      const onAbort = () => this.#finish('aborted');
      signal.addEventListener('abort', onAbort, { once: true });
      this.#unlinkSignal = () => signal.removeEventListener('abort', onAbort);
    }
    if (opts.onEvent) {
      this.#iterated = true;
      this.#push();
    } else {
      // Connect now, and hold the first event for the iterator; a refusal
      // ends the subscription (and rejects opened) whether or not anyone
      // iterates yet.
      this.#prefetch = this.#follower.next();
      this.#prefetch.catch((err) => this.#failed(err));
    }
  }

  /** Ends the subscription. */
  close() {
    this.#finish('closed');
  }

  [Symbol.asyncIterator]() {
    if (this.#iterated) {
      throw new TypeError(this.#opts.onEvent ? 'A subscription with onEvent cannot also be iterated.' : 'A subscription can be iterated only once.');
    }
    this.#iterated = true;
    const it = {
      next: async () => {
        if (this.#finished) return this.#end();
        const p = this.#prefetch ?? this.#follower.next();
        this.#prefetch = null;
        let ev;
        try {
          ev = await p;
        } catch (err) {
          this.#failed(err);
          return this.#end();
        }
        if (ev === null) {
          this.#finish('closed');
          return this.#end();
        }
        this.lastEventId = ev.id;
        return { value: ev, done: false };
      },
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  #end() {
    const r = this.#result;
    if (r.status === 'closed') return { value: undefined, done: true };
    if (r.status === 'aborted') throw this.#opts.signal?.reason ?? new DOMException('The subscription was aborted.', 'AbortError');
    throw r.error;
  }

  async #push() {
    try {
      for (;;) {
        const ev = await this.#follower.next();
        if (ev === null) return this.#finish('closed');
        this.lastEventId = ev.id;
        call(this.#opts.onEvent, ev, this);
        if (this.#finished) return;
      }
    } catch (err) {
      this.#failed(err);
    }
  }

  #request(path, after) {
    if (after) return { method: 'GET', path, headers: { 'Last-Event-ID': after } };
    return { method: 'GET', path: this.#fromStart ? path + '?from=start' : path, headers: {} };
  }

  #failed(err) {
    if (this.#finished) return;
    const error = err instanceof SluiceError ? err : new SluiceError(err?.message || String(err), { cause: err });
    this.#finish('error', { error });
  }

  #finish(status, extra = {}) {
    if (this.#finished) return;
    this.#finished = true;
    this.#unlinkSignal();
    this.#ctl.abort();
    this.#follower.close();
    this.#result = { status, ...extra };
    this.#settleOpened(extra.error ?? new DOMException(`The subscription ended (${status}) before it opened.`, 'AbortError'));
    call(this.#opts.onState, 'closed', { status });
    this.#resolve(this.#result);
  }
}
