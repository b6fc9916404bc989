// errors.js: what the client throws, or reports in a result's error.

/**
 * SluiceError is an error that Sluice reported: an HTTP status with its
 * OpenAI-style error object, or an error event that ended a stream (status
 * 0). error is that object as Sluice sent it ({message, type, param, code}),
 * or null when there was none; code, type and param are copied from it for
 * convenience. The client adds two codes of its own: 'expired' (the server
 * no longer has the stream, status 404) and 'network' (see ConnectionError).
 */
export class SluiceError extends Error {
  constructor(message, { status = 0, code = null, type = null, param = null, error = null, retryAfter = 0, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SluiceError';
    this.status = status;
    this.code = code ?? error?.code ?? null;
    this.type = type ?? error?.type ?? null;
    this.param = param ?? error?.param ?? null;
    this.error = error;
    /** Milliseconds the server asked to wait (Retry-After), 0 if it did not. */
    this.retryAfter = retryAfter;
  }
}

/**
 * ConnectionError is a failure to reach Sluice: the request that starts a
 * chat could not be sent (it is never sent twice, since it might have
 * started an answer), or a stream's connection stayed down for all the
 * attempts of the retry policy. Its code is 'network'; cause is the last
 * failure.
 */
export class ConnectionError extends SluiceError {
  constructor(message, { cause } = {}) {
    super(message, { code: 'network', cause });
    this.name = 'ConnectionError';
  }
}

/** The Retry-After of a response, in milliseconds (0 when absent). */
export function retryAfterOf(res) {
  const v = res.headers.get('Retry-After');
  if (!v) return 0;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const when = Date.parse(v);
  return Number.isNaN(when) ? 0 : Math.max(0, when - Date.now());
}

/** The SluiceError that a response with an error status stands for. */
export async function errorOf(res) {
  let error = null;
  try {
    const body = await res.json();
    if (body && typeof body.error === 'object') error = body.error;
  } catch {
    // not JSON: the status says what there is to say
  }
  const message = error?.message || `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
  return new SluiceError(message, { status: res.status, error, retryAfter: retryAfterOf(res) });
}

/** The message of any thrown value, for the reasons the client reports. */
export function messageOf(err) {
  const cause = err?.cause?.code || err?.cause?.message;
  const msg = err?.message || String(err);
  return cause && !msg.includes(cause) ? `${msg}: ${cause}` : msg;
}

/**
 * Calls an application's callback. What it throws is reported as an
 * uncaught error, as an event listener's would be, and does not break the
 * stream.
 */
export function call(fn, ...args) {
  if (!fn) return;
  try {
    fn(...args);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}
