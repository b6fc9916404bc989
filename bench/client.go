package bench

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// The bench's clients speak HTTP/1.1 and WebSocket on raw TCP connections
// of their own: no http.Transport (two goroutines and buffers per
// connection) and no WebSocket library. Each connection is one net.Conn,
// one bufio.Reader and, while it reads, one goroutine, so that thousands of
// them cost the client little of the two cores it shares with the server;
// on Linux the SSE generations, the most of them, are read by one event
// loop per worker instead (gens_linux.go).

// dialer returns a dialer bound to the source address src (127.0.0.x), so
// that connections spread over several source addresses and no address
// runs out of ephemeral ports.
func dialer(src string) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// stream is one open response: SSE after the head, whose resp.Body is the
// (de-chunked) body, or WebSocket frames after the upgrade.
type stream struct {
	conn net.Conn
	br   *bufio.Reader
	resp *http.Response // SSE
}

func (s *stream) Close() error { return s.conn.Close() }

// openSSE sends GET path and reads the response head; a status other than
// 200 is an error.
func openSSE(d *net.Dialer, host, path string) (*stream, error) {
	c, err := d.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	return finishSSE(c, []byte("GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nAccept: text/event-stream\r\n\r\n"))
}

func finishSSE(c net.Conn, req []byte) (*stream, error) {
	br, resp, err := handshake(c, req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	return &stream{conn: c, br: br, resp: resp}, nil
}

// handshake sends req on c and reads the response head; a status other
// than want closes c and is an error that quotes the start of the body.
func handshake(c net.Conn, req []byte, want int) (*bufio.Reader, *http.Response, error) {
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.Close()
		return nil, nil, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return br, resp, nil
}

// openWS dials and upgrades to a WebSocket.
func openWS(d *net.Dialer, host string) (*stream, error) {
	c, err := d.Dial("tcp", host)
	if err != nil {
		return nil, err
	}
	// The key is fixed: the bench trusts the server it measures, so it
	// skips checking Sec-WebSocket-Accept.
	req := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: c2x1aWNlLWJlbmNoLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	br, _, err := handshake(c, []byte(req), http.StatusSwitchingProtocols)
	if err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	return &stream{conn: c, br: br}, nil
}

// writeWS sends one masked text frame (a client must mask). The mask key is
// zero, which leaves the payload as it is: masking protects proxies from
// browser scripts, which the bench is not.
func writeWS(c net.Conn, opcode byte, payload []byte) error {
	hdr := make([]byte, 0, 14+len(payload))
	hdr = append(hdr, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		hdr = append(hdr, 0x80|byte(n))
	case n < 1<<16:
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, 0x80|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	hdr = append(hdr, 0, 0, 0, 0)
	_, err := c.Write(append(hdr, payload...))
	return err
}

var errWSClosed = errors.New("websocket closed by the server")

// nextWS reads the next data frame into buf[:0] (grown as needed) and
// returns it; it answers pings on the way. With discard set it skips the
// payload and returns only its first bytes (up to 64).
func (s *stream) nextWS(buf []byte, discard bool) ([]byte, error) {
	for {
		// Byte by byte from the buffer: a header array passed to ReadFull
		// would be allocated for every frame.
		b0, err := s.br.ReadByte()
		if err != nil {
			return nil, err
		}
		b1, err := s.br.ReadByte()
		if err != nil {
			return nil, err
		}
		opcode := b0 & 0x0f
		n := int64(b1 & 0x7f)
		if n >= 126 {
			size := 2
			if n == 127 {
				size = 8
			}
			n = 0
			for range size {
				b, err := s.br.ReadByte()
				if err != nil {
					return nil, err
				}
				n = n<<8 | int64(b)
			}
		}
		if n > 64<<20 {
			return nil, fmt.Errorf("websocket frame of %d bytes", n)
		}
		switch opcode {
		case 0x8:
			return nil, errWSClosed
		case 0x9, 0xa:
			p := make([]byte, n)
			if _, err := io.ReadFull(s.br, p); err != nil {
				return nil, err
			}
			if opcode == 0x9 {
				if err := writeWS(s.conn, 0xa, p); err != nil {
					return nil, err
				}
			}
			continue
		}
		if discard {
			k := min(n, 64)
			buf = append(buf[:0], make([]byte, k)...)
			if _, err := io.ReadFull(s.br, buf); err != nil {
				return nil, err
			}
			if _, err := s.br.Discard(int(n - k)); err != nil {
				return nil, err
			}
			return buf, nil
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(s.br, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
}

// counter counts occurrences of a pattern in a stream read in pieces,
// including those split across pieces.
type counter struct {
	pat  []byte
	tail []byte // the last len(pat)-1 bytes seen
	n    int64
}

// eventStart begins every SSE event Sluice writes: its id line, after a
// line break. The retry line and heartbeats share a block with the event
// that follows them, so a blank line does not always come first.
const eventStart = "\nid: "

func newCounter(pat string) *counter { return &counter{pat: []byte(pat)} }

func (c *counter) feed(p []byte) {
	k := len(c.pat) - 1
	if len(c.tail) > 0 {
		// A match that spans the boundary lies within tail + p[:k].
		j := append(c.tail[:len(c.tail):len(c.tail)], p[:min(k, len(p))]...)
		c.n += int64(bytes.Count(j, c.pat))
	}
	c.n += int64(bytes.Count(p, c.pat))
	if len(p) >= k {
		c.tail = append(c.tail[:0], p[len(p)-k:]...)
	} else {
		c.tail = append(c.tail, p...)
		if len(c.tail) > k {
			c.tail = c.tail[len(c.tail)-k:]
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
