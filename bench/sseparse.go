package bench

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The reading side of an SSE generation, apart from how its bytes arrive:
// the body's framing, then the events in it. It is fed whatever each read
// returned and needs no goroutine of its own, so that one event loop can
// drive thousands of generations (gens_linux.go).

// eventSink takes the events of one generation, each with the time of the
// read that completed it and its data.
type eventSink interface {
	event(now time.Time, data []byte)
}

// sseEvents splits an event stream, read in pieces, into events. An event
// ends at a blank line, "\n\n", as Sluice and the baseline write them; of
// its lines only the first data line counts.
type sseEvents struct {
	pending []byte // the start of an event whose end has not arrived
}

// feed takes p, bytes of the stream that a read returned at now, and hands
// each event p completes to s. It reports whether the generation ended:
// [DONE] or an error event; the bytes after that are left unread.
func (e *sseEvents) feed(p []byte, now time.Time, s eventSink) bool {
	if len(e.pending) == 0 {
		rest, end := splitEvents(p, now, s)
		e.pending = append(e.pending, rest...)
		return end
	}
	e.pending = append(e.pending, p...)
	rest, end := splitEvents(e.pending, now, s)
	e.pending = append(e.pending[:0], rest...)
	return end
}

// splitEvents hands the complete events at the start of b to s and returns
// the rest, an event not yet ended.
func splitEvents(b []byte, now time.Time, s eventSink) (rest []byte, end bool) {
	for {
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			return b, false
		}
		ev := b[:i]
		b = b[i+2:]
		j := bytes.Index(ev, []byte("data: "))
		if j < 0 || (j > 0 && ev[j-1] != '\n') {
			continue // a comment or the retry line
		}
		data := ev[j+len("data: "):]
		if bytes.HasPrefix(data, []byte("[DONE]")) || bytes.HasPrefix(data, []byte(`{"error"`)) {
			return nil, true
		}
		s.event(now, data)
	}
}

// framing is how a response body ends.
type framing uint8

const (
	untilClose framing = iota // the server closes the connection: Sluice's own streams
	chunked                   // Transfer-Encoding: chunked: net/http's, the baseline's
	sized                     // Content-Length
)

// chunkState is where a chunked body stands.
type chunkState uint8

const (
	chunkSize    chunkState = iota // the hex digits of a chunk's size
	chunkSizeEnd                   // whitespace, an extension, CRLF
	chunkExt                       // an extension, up to LF
	chunkSizeLF                    // the LF of the size line
	chunkData                      // left bytes of data
	chunkCR                        // the CRLF after the data
	chunkLF
	chunkTrailer // lines after the last chunk, up to a blank one
)

// httpBody decodes an HTTP/1.1 response body fed in pieces, and the events
// in it. The zero value reads a body that ends with the connection.
type httpBody struct {
	framing framing
	left    int64 // sized: bytes of the body to come; chunked: of the chunk
	state   chunkState
	digits  int // of the chunk size so far
	line    int // bytes of the trailer line so far
	events  sseEvents
}

// newHTTPBody reads the body of resp, whose head has been read.
func newHTTPBody(resp *http.Response) *httpBody {
	switch {
	case len(resp.TransferEncoding) > 0 && resp.TransferEncoding[0] == "chunked":
		return &httpBody{framing: chunked}
	case resp.ContentLength >= 0:
		return &httpBody{framing: sized, left: resp.ContentLength}
	}
	return &httpBody{framing: untilClose}
}

// feed takes p, the bytes a read returned at now, and hands the events they
// complete to s. It reports whether the generation ended ([DONE] or an
// error event), or an error if the body is malformed or ended before that.
func (b *httpBody) feed(p []byte, now time.Time, s eventSink) (bool, error) {
	switch b.framing {
	case chunked:
		return b.dechunk(p, now, s)
	case sized:
		k := min(b.left, int64(len(p)))
		b.left -= k
		if b.events.feed(p[:k], now, s) {
			return true, nil
		}
		if b.left == 0 {
			return false, fmt.Errorf("%w: %v", errNoEnd, io.EOF)
		}
		return false, nil
	}
	return b.events.feed(p, now, s), nil
}

// closed is the error for the connection's end (read returned 0 or err)
// before the generation's.
func (b *httpBody) closed(err error) error {
	if err == nil {
		err = io.EOF
		if b.framing != untilClose {
			err = io.ErrUnexpectedEOF
		}
	}
	return fmt.Errorf("%w: %v", errNoEnd, err)
}

// dechunk is feed for a chunked body. Data goes to the events a span at a
// time; the framing around it, a byte at a time.
func (b *httpBody) dechunk(p []byte, now time.Time, s eventSink) (bool, error) {
	for i := 0; i < len(p); {
		if b.state == chunkData {
			k := min(b.left, int64(len(p)-i))
			if b.events.feed(p[i:i+int(k)], now, s) {
				return true, nil
			}
			i += int(k)
			if b.left -= k; b.left == 0 {
				b.state = chunkCR
			}
			continue
		}
		c := p[i]
		i++
		switch b.state {
		case chunkSize:
			if v, ok := unhex(c); ok && b.digits < 15 {
				b.left = b.left<<4 | int64(v)
				b.digits++
				continue
			}
			if b.digits == 0 {
				return false, malformed(c, "where a chunk size starts")
			}
			b.state = chunkSizeEnd
			i-- // this byte again, in its new state
		case chunkSizeEnd:
			switch c {
			case ' ', '\t':
			case ';':
				b.state = chunkExt
			case '\r':
				b.state = chunkSizeLF
			case '\n':
				b.sizeLine()
			default:
				return false, malformed(c, "after a chunk size")
			}
		case chunkExt:
			if c == '\n' {
				b.sizeLine()
			}
		case chunkSizeLF:
			if c != '\n' {
				return false, malformed(c, "after a chunk size's CR")
			}
			b.sizeLine()
		case chunkCR:
			if c != '\r' {
				return false, malformed(c, "after a chunk's data")
			}
			b.state = chunkLF
		case chunkLF:
			if c != '\n' {
				return false, malformed(c, "after a chunk's data and CR")
			}
			b.state, b.digits = chunkSize, 0
		case chunkTrailer:
			switch {
			case c == '\n' && b.line == 0:
				return false, fmt.Errorf("%w: %v", errNoEnd, io.EOF) // the body's end
			case c == '\n':
				b.line = 0
			case c != '\r':
				b.line++
			}
		}
	}
	return false, nil
}

// sizeLine ends a chunk's size line: data follows, or the trailer after
// the last chunk, of size 0.
func (b *httpBody) sizeLine() {
	b.state = chunkData
	if b.left == 0 {
		b.state, b.line = chunkTrailer, 0
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func malformed(c byte, where string) error {
	return fmt.Errorf("%w: malformed chunked encoding: %q %s", errNoEnd, c, where)
}
