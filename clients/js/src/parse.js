// parse.js: a parser of the text/event-stream format, as the WHATWG HTML
// standard's "interpreting an event stream" says. The client reads every
// stream through it; it is exported for applications that read other
// event streams with fetch.

/**
 * createParser returns a parser. Feed it decoded text in pieces of any
 * size, split anywhere (inside a line, between the CR and LF of a line
 * break); it calls onEvent({id, event, data}) for every event dispatched,
 * onRetry(ms) for every valid retry field and onComment(text) for every
 * comment line. id is the stream's last event ID, carried from event to
 * event as EventSource's lastEventId is; event is 'message' when the event
 * had no name.
 */
export function createParser({ onEvent, onRetry, onComment } = {}) {
  let buf = '';
  let data = '';
  let event = '';
  let idBuffer = '';
  let lastId = '';
  let started = false;

  function line(l) {
    if (l === '') {
      // Dispatch. The standard sets the last event ID at every blank line,
      // whether the block had data or not.
      lastId = idBuffer;
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
        if (!value.includes('\0')) idBuffer = value;
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
        const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
        if (end < 0) break;
        let next = end + 1;
        if (buf[end] === '\r') {
          // A CR at the very end may be the first half of a CRLF.
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
