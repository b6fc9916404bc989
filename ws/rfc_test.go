package ws_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testenv"
)

// rawClient speaks RFC 6455 framing by hand over TCP, so that the server's
// framing is checked against bytes rather than against a library's reading
// of them.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (e *env) dialRaw(t *testing.T) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The example of RFC 6455 1.3.
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %s %v", resp.Status, resp.Header)
	}
	return &rawClient{t: t, c: c, br: br}
}

// frame writes one frame; masked unless mask is nil.
func (r *rawClient) frame(fin bool, op byte, payload []byte, mask []byte) {
	r.t.Helper()
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	m := byte(0)
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if mask != nil {
		b = append(b, mask...)
		for i := range p {
			p[i] ^= mask[i%4]
		}
	}
	if _, err := r.c.Write(append(b, p...)); err != nil {
		r.t.Fatal(err)
	}
}

var key = []byte{0x37, 0xfa, 0x21, 0x3d}

// next reads one server frame, checking that it is final and unmasked.
func (r *rawClient) next() (op byte, payload []byte) {
	r.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r.br, h[:]); err != nil {
		r.t.Fatalf("reading a frame: %v", err)
	}
	if h[0]&0x80 == 0 || h[0]&0x70 != 0 || h[1]&0x80 != 0 {
		r.t.Fatalf("frame header %08b %08b: want FIN, no RSV, no mask", h[0], h[1])
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(r.br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(r.br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r.br, payload); err != nil {
		r.t.Fatal(err)
	}
	return h[0] & 0x0f, payload
}

// closed reads frames until a close frame and returns its code.
func (r *rawClient) closed() int {
	r.t.Helper()
	for {
		op, p := r.next()
		if op == 0x8 {
			if len(p) < 2 {
				return 1005
			}
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

// TestFramingFollowsRFC6455 sends what RFC 6455 lets a client send, byte by
// byte: a masked message in three fragments with a ping and a pong between
// them, and a message of more than 64 KiB (a 64-bit length); then what it
// forbids, each on a connection of its own, and expects the close code the
// RFC gives.
func TestFramingFollowsRFC6455(t *testing.T) {
	e := newEnv(t, fast)
	c := e.dialRaw(t)
	msg := []byte(`{"type":"topic.publish","id":"frag","topic":"rfc","data":"` + strings.Repeat("é", 40) + `"}`)
	// Fragments split inside a UTF-8 character: only the whole message must be valid.
	c.frame(false, 0x1, msg[:60], key)
	c.frame(true, 0x9, []byte("between"), key)
	c.frame(false, 0x0, msg[60:61], key)
	c.frame(true, 0xA, []byte("unasked"), key)
	c.frame(true, 0x0, msg[61:], key)
	if op, p := c.next(); op != 0xA || string(p) != "between" {
		t.Fatalf("got op %x %q, want the pong of the ping between the fragments", op, p)
	}
	op, p := c.next()
	var r frame
	if err := json.Unmarshal(p, &r); op != 0x1 || err != nil || r.Type != "published" || r.ID != "frag" {
		t.Fatalf("got op %x %s (%v), want the answer to the fragmented message", op, p, err)
	}
	big := []byte(`{"type":"topic.publish","id":"big","topic":"rfc","data":"` + strings.Repeat("x", 70<<10) + `"}`)
	c.frame(true, 0x1, big, key)
	if _, p := c.next(); !strings.Contains(string(p), `"id":"big"`) {
		t.Fatalf("answer to a 70 KiB message: %s", p)
	}
	// Events of more than 64 KiB come back in one frame with a 64-bit length.
	c.frame(true, 0x1, []byte(`{"type":"topic.subscribe","topic":"rfc","from":"start"}`), key)
	c.next() // subscribed
	c.next() // the fragmented message's event
	if _, p := c.next(); len(p) < 70<<10 || !strings.Contains(string(p), `"type":"event"`) {
		t.Fatalf("the big event: %d bytes", len(p))
	}
	// A clean close is echoed with its code.
	c.frame(true, 0x8, []byte{0x0f, 0xa0, 'b', 'y', 'e'}, key) // 4000
	if code := c.closed(); code != 4000 {
		t.Fatalf("close echoed with %d, want 4000", code)
	}

	for _, tc := range []struct {
		name string
		send func(c *rawClient)
		code int
	}{
		{"an unmasked frame", func(c *rawClient) { c.frame(true, 0x1, []byte(`{}`), nil) }, 1002},
		{"a continuation with nothing to continue", func(c *rawClient) { c.frame(true, 0x0, []byte(`{}`), key) }, 1002},
		{"a new message inside a fragmented one", func(c *rawClient) {
			c.frame(false, 0x1, []byte(`{`), key)
			c.frame(true, 0x1, []byte(`{}`), key)
		}, 1002},
		{"a fragmented ping", func(c *rawClient) { c.frame(false, 0x9, nil, key) }, 1002},
		{"a reserved opcode", func(c *rawClient) { c.frame(true, 0x3, nil, key) }, 1002},
		{"a text message that is not UTF-8", func(c *rawClient) { c.frame(true, 0x1, []byte{'"', 0xff, '"'}, key) }, 1007},
		{"a close with code 1005, which must not be sent", func(c *rawClient) { c.frame(true, 0x8, []byte{0x03, 0xed}, key) }, 1002},
	} {
		c := e.dialRaw(t)
		tc.send(c)
		if code := c.closed(); code != tc.code {
			t.Errorf("%s: closed with %d, want %d", tc.name, code, tc.code)
		}
	}
}

// TestHandshakesThatAreNotWebSocketsAreRefused: a GET without the upgrade,
// or with another version of the protocol, is answered 400 with the error
// object of the API, and the version this server speaks (RFC 6455 4.2.2).
func TestHandshakesThatAreNotWebSocketsAreRefused(t *testing.T) {
	e := newEnv(t, fast)
	upgrade := []string{"Upgrade", "websocket", "Connection", "Upgrade", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	for _, tc := range []struct {
		name    string
		header  []string
		version string
	}{
		{"a plain GET", nil, ""},
		{"version 8", append(upgrade, "Sec-WebSocket-Version", "8"), "13"},
		{"a key of 8 bytes", []string{"Upgrade", "websocket", "Connection", "keep-alive, Upgrade", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "AAAAAAAAAAA="}, ""},
	} {
		resp := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/ws", nil, tc.header...)
		got := jsonOf(t, decodeError(t, resp))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(got, "bad_websocket_handshake") || resp.Header.Get("Sec-WebSocket-Version") != tc.version {
			t.Errorf("%s: %s %v %s", tc.name, resp.Status, resp.Header, got)
		}
	}
}
