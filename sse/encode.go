package sse

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// ContentType is the media type of an event stream. It has no charset
// parameter: event streams are always UTF-8.
const ContentType = "text/event-stream"

// SetHeaders sets the response headers that an event stream needs to reach
// the client unbuffered and uncached: Content-Type, Cache-Control: no-cache,
// and X-Accel-Buffering: no, which stops nginx from buffering the response.
// It does not set Connection: keep-alive: HTTP/2 forbids connection-specific
// header fields (RFC 9113 §8.2.2), and HTTP/1.1 keeps connections alive
// without it.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
}

// AppendEvent appends one event to dst and returns the extended buffer. It
// allocates only when dst lacks the capacity.
//
// The event is written as "id: <id>\n" (left out when id is empty),
// "event: <name>\n" (left out when name is empty, which clients read as
// "message"), one "data: <line>\n" for every line of data, and a blank line.
// Lines of data are split at every line break (\r\n, \r or \n), so a client
// receives data with each line break turned into \n, as WHATWG parsers
// normalise it; no \r is ever written. Every data line is written with the
// space after the colon, because parsers strip exactly one: a line that
// itself starts with a space keeps it.
//
// Empty data is written as one "data: \n" line. The client then dispatches
// an event whose data is empty: the standard drops only events with no data
// line at all (its check comes before the last \n is trimmed), and
// AppendEvent never writes one of those.
//
// An empty id is left out rather than written as "id: \n", which would reset
// the client's last event ID: an event without an id keeps the one before.
//
// A line break in id or name would end the field early and start a field of
// the attacker's choosing, and a NUL makes clients ignore the whole id field,
// so AppendEvent removes \r and \n from id and name, and NUL from id. An id
// or name left empty by that is left out. Log IDs and event names never hold
// such bytes, so this only guards against misuse.
//
// Bytes are written as given. Invalid UTF-8 in id, name or data reaches the
// client as U+FFFD, as the standard's decoder replaces it.
func AppendEvent(dst []byte, id, name string, data []byte) []byte {
	dst = slices.Grow(dst, len(id)+len(name)+len(data)+len("id: \nevent: \ndata: \n\n"))
	dst = appendField(dst, "id: ", id, true)
	dst = appendField(dst, "event: ", name, false)
	return appendLines(dst, "data: ", data, true)
}

// AppendComment appends a comment, which clients ignore: ": <text>\n". It
// is the heartbeat that keeps proxies from closing an idle stream. No blank
// line follows: a comment needs none, and a blank line after it makes some
// clients (@microsoft/fetch-event-source, the one the seeds use) dispatch an
// empty message, which breaks a plain JSON.parse(ev.data). Each line of a
// multi-line text becomes its own comment line, so text can never start a
// field.
func AppendComment(dst []byte, text string) []byte {
	return appendLines(dst, ": ", []byte(text), false)
}

// appendLines appends prefix and each line of text, split at every line
// break (\r\n, \r or \n), ending each with \n; then, with blank, a blank
// line, which ends the block.
func appendLines(dst []byte, prefix string, text []byte, blank bool) []byte {
	for {
		i := lineBreak(text)
		dst = append(dst, prefix...)
		if i < 0 {
			dst = append(dst, text...)
			dst = append(dst, '\n')
			break
		}
		dst = append(dst, text[:i]...)
		dst = append(dst, '\n')
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
	if !blank {
		return dst
	}
	return append(dst, '\n')
}

// AppendRetry appends "retry: <ms>\n", which sets how long a client waits
// before it reconnects. No blank line follows, so the field joins the block
// of the event written next: a block of its own, with no data, is
// dispatched by some clients (@microsoft/fetch-event-source) as an empty
// message. d is rounded up to a whole millisecond, so a positive
// delay never becomes 0 (reconnect at once); a negative d is written as 0.
func AppendRetry(dst []byte, d time.Duration) []byte {
	var ms int64
	if d > 0 {
		ms = int64(d / time.Millisecond)
		if d%time.Millisecond != 0 {
			ms++
		}
	}
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, ms, 10)
	return append(dst, '\n')
}

// appendField appends prefix, value without the bytes a field cannot carry
// (\r, \n, and NUL too when noNUL is set), and "\n"; or nothing at all when
// that would leave the value empty.
func appendField(dst []byte, prefix, value string, noNUL bool) []byte {
	start := len(dst)
	dst = append(dst, prefix...)
	n := len(dst)
	for i := 0; i < len(value); i++ {
		// One comparison per byte on the usual path: all three are <= \r.
		if c := value[i]; c <= '\r' && (c == '\r' || c == '\n' || c == 0 && noNUL) {
			continue
		}
		dst = append(dst, value[i])
	}
	if len(dst) == n {
		return dst[:start]
	}
	return append(dst, '\n')
}

// lineBreak returns the index of the first \r or \n in b, or -1. It uses two
// vectorised scans rather than one byte loop: data is usually one line.
func lineBreak(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if j := bytes.IndexByte(b[:i], '\r'); j >= 0 {
		return j
	}
	return i
}
