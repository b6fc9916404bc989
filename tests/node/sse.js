// An SSE client over fetch, the way browser libraries such as
// fetchEventSource read a stream: the response body is fed, byte chunk by
// byte chunk, to eventsource-parser (an independent WHATWG parser), and the
// client remembers what it has seen so it can resume after a cut.

import assert from 'node:assert/strict';
import { createParser } from 'eventsource-parser';

/** An SSE response being read. Make one with openSSE. */
export class SSEReader {
  constructor(response, controller) {
    this.response = response;
    this.controller = controller;
    /** Every event the parser dispatched, in order: {id, event, data}. */
    this.events = [];
    /** The values of every retry: field. */
    this.retries = [];
    /** Every comment line (": ping" gives "ping"). */
    this.comments = [];
    /** Parse errors (unknown fields, bad retry values). */
    this.parseErrors = [];
    /** The body as decoded so far (only the bytes fed to the parser). */
    this.raw = '';
    /** Bytes fed to the parser so far. */
    this.bytes = 0;
    /** True once the server ended the body. */
    this.ended = false;
    /** Arrival time (performance.now()) of each event, by index in events. */
    this.times = [];
    this.cursor = 0;
    this.decoder = new TextDecoder();
    this.reader = response.body?.getReader();
    this.parser = createParser({
      onEvent: (e) => {
        this.events.push(e);
        this.times.push(performance.now());
      },
      onRetry: (ms) => this.retries.push(ms),
      onComment: (c) => this.comments.push(c),
      onError: (err) => this.parseErrors.push(err),
    });
  }

  get status() {
    return this.response.status;
  }

  get headers() {
    return this.response.headers;
  }

  /** Feeds one more chunk of the body to the parser; false at the end. */
  async pump(limit = Infinity) {
    if (this.ended || !this.reader) {
      this.ended = true;
      return false;
    }
    const { value, done } = await this.reader.read();
    if (done) {
      this.ended = true;
      this.raw += this.decoder.decode();
      return false;
    }
    const chunk = value.length > limit ? value.subarray(0, limit) : value;
    this.feed(chunk);
    return true;
  }

  feed(bytes) {
    this.bytes += bytes.length;
    const text = this.decoder.decode(bytes, { stream: true });
    this.raw += text;
    this.parser.feed(text);
  }

  /** Returns the next event not yet returned, or null when the body ended. */
  async next() {
    while (this.cursor >= this.events.length) {
      if (!(await this.pump())) return null;
    }
    return this.events[this.cursor++];
  }

  /** Returns the next n events, failing with what came if the body ends first. */
  async take(n) {
    const got = [];
    while (got.length < n) {
      const e = await this.next();
      assert.ok(e, `the stream ended after ${got.length} of ${n} events: ${describe(this)}`);
      got.push(e);
    }
    return got;
  }

  /** Reads until the body ends; returns every event. */
  async readToEnd() {
    while (await this.pump());
    this.cursor = this.events.length;
    return this.events;
  }

  /**
   * Reads until exactly n bytes of the body went to the parser (possibly in
   * the middle of an event, or of a UTF-8 character), then cuts the
   * connection. Returns the events a client would have seen.
   */
  async cutAtByte(n) {
    while (this.bytes < n && (await this.pump(n - this.bytes)));
    this.abort();
    this.cursor = this.events.length;
    return this.events;
  }

  /** Cuts the connection, like a network failure or a closed tab. */
  abort() {
    this.controller.abort();
  }
}

/**
 * Opens an SSE request with fetch.
 * @param {string} url
 * @param {RequestInit} [init]
 */
export async function openSSE(url, init = {}) {
  const controller = new AbortController();
  const response = await fetch(url, {
    ...init,
    headers: { Accept: 'text/event-stream', ...init.headers },
    signal: controller.signal,
  });
  return new SSEReader(response, controller);
}

/**
 * Asserts what every SSE response of Sluice has: status 200, the type, no
 * caching, no proxy buffering. Another status fails with the body it came with.
 */
export async function assertSSEHeaders(reader, what) {
  if (reader.status !== 200) await reader.readToEnd();
  assert.equal(reader.status, 200, `${what}: ${describe(reader)}`);
  const h = reader.headers;
  assert.match(h.get('content-type') ?? '', /^text\/event-stream\b/, `${what}: Content-Type`);
  assert.match(h.get('cache-control') ?? '', /\bno-cache\b/, `${what}: Cache-Control`);
  assert.equal(h.get('x-accel-buffering'), 'no', `${what}: X-Accel-Buffering`);
}

/** POSTs body as JSON (a string is sent as it is, to send malformed JSON). */
export function postJSON(url, body) {
  return fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** Starts a streaming chat completion with a raw POST, like a browser app. */
export function postChat(url, messages, extra = {}) {
  return openSSE(url + '/v1/chat/completions', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'demo', stream: true, messages, ...extra }),
  });
}

/**
 * Joins the delta content of chat.completion.chunk events. Throws on an
 * error event, so an error can never pass for a complete answer.
 */
export function textOf(events) {
  let text = '';
  for (const e of events) {
    if (e.data === '[DONE]') continue;
    const chunk = JSON.parse(e.data);
    if (chunk.error) throw new Error(`error event in stream (id ${e.id}): ${e.data}`);
    text += chunk.choices?.[0]?.delta?.content ?? '';
  }
  return text;
}

/** The ids of events, in order. */
export const idsOf = (events) => events.map((e) => e.id);

/** The message of a failed assertion about a stream: what came back. */
export function describe(reader) {
  const raw = reader.raw.length > 2000 ? reader.raw.slice(0, 1000) + '\n…\n' + reader.raw.slice(-1000) : reader.raw;
  return `status ${reader.status}, ${reader.events.length} events, ended ${reader.ended}, body:\n${raw}`;
}
