package ws_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/ws"
)

// keyProtocols are the subprotocols a browser offers to present key.
func keyProtocols(key string) []string {
	return []string{ws.Subprotocol, ws.KeyProtocolPrefix + base64.RawURLEncoding.EncodeToString([]byte(key))}
}

// TestKeyInSubprotocolIdentifiesTheCaller: a client that cannot send
// Authorization (a browser) offers its key as a subprotocol; the server
// selects "sluice" (never the key's), and the connection acts for that
// key: what it starts is the key's, over SSE too. A wrong key is refused
// as a wrong Authorization is, and a page of another site is refused.
func TestKeyInSubprotocolIdentifiesTheCaller(t *testing.T) {
	keys, err := admit.ParseKeys("ann: " + keyAnn + "\nbob: " + keyBob + "\n")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{admit: admit.Config{Keys: keys}, demo: fast.demo})
	dial := func(protocols []string, origin string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		c, resp, err := websocket.Dial(ctx, e.WSURL, &websocket.DialOptions{Subprotocols: protocols, HTTPHeader: hdr})
		if err == nil {
			t.Cleanup(func() { c.CloseNow() })
		}
		return c, resp, err
	}

	wc, resp, err := dial(keyProtocols(keyAnn), e.URL)
	if err != nil {
		t.Fatalf("dial with the key as a subprotocol: %v", err)
	}
	if got := wc.Subprotocol(); got != ws.Subprotocol {
		t.Fatalf("selected subprotocol %q, want %q", got, ws.Subprotocol)
	}
	if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 1 || got[0] != ws.Subprotocol {
		t.Fatalf("the answer names protocols %q: the key must not come back", got)
	}
	c := &client{t: t, c: wc}
	c.send(map[string]any{"type": "chat.start", "body": chatBody("mine, short")})
	id := c.expect("started").Stream
	if fs := c.untilEnd(id); fs[len(fs)-1].Data != "[DONE]" {
		t.Fatalf("ended with %q", fs[len(fs)-1].Data)
	}
	for key, want := range map[string]int{keyAnn: http.StatusOK, keyBob: http.StatusForbidden} {
		resp := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/v1/streams/"+id, nil, "Authorization", "Bearer "+key)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("reading the stream over SSE with %s's key: %s, want %d", key[:6], resp.Status, want)
		}
	}

	for _, tc := range []struct {
		name      string
		protocols []string
		origin    string
		status    int
	}{
		{"no key", []string{ws.Subprotocol}, "", http.StatusUnauthorized},
		{"a wrong key", keyProtocols("sk-nobody-0123456789abcdef"), "", http.StatusUnauthorized},
		{"a key that is not base64url", []string{ws.Subprotocol, ws.KeyProtocolPrefix + "not=base64"}, "", http.StatusUnauthorized},
		{"a page of another site", keyProtocols(keyAnn), "https://evil.example", http.StatusForbidden},
	} {
		_, resp, err := dial(tc.protocols, tc.origin)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Errorf("%s: %v (%v), want %d", tc.name, resp, err, tc.status)
		}
	}
}
