package ws_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestKeysGuardWebSocketStreams wires /ws as cmd/sluice does, with keys:
// no key, no connection; a stream started over WebSocket belongs to its
// key, over SSE and WebSocket alike.
func TestKeysGuardWebSocketStreams(t *testing.T) {
	const ann, bob = "sk-ann-0123456789abcdef", "sk-bob-0123456789abcdef"
	keys, err := admit.ParseKeys("ann: " + ann + "\nbob: " + bob + "\n")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{admit: admit.Config{Keys: keys, Limits: admit.Limits{StreamsPerAddr: 2}}, demo: demo.Options{TokensPerSecond: 200}})
	dial := func(key string) (*client, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hdr := http.Header{}
		if key != "" {
			hdr.Set("Authorization", "Bearer "+key)
		}
		c, resp, err := websocket.Dial(ctx, e.WSURL, &websocket.DialOptions{HTTPHeader: hdr})
		if err != nil {
			return nil, resp, err
		}
		t.Cleanup(func() { c.CloseNow() })
		return &client{t: t, c: c}, resp, nil
	}

	if _, resp, err := dial(""); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a key: %v (%v)", resp, err)
	}
	annC, _, err := dial(ann)
	if err != nil {
		t.Fatal(err)
	}
	annC.send(map[string]any{"type": "chat.start", "body": chatBody("mine")})
	id := annC.expect("started").Stream

	bobC, _, err := dial(bob)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"stream.attach", "stream.cancel"} {
		bobC.send(map[string]any{"type": typ, "id": "x", "stream": id})
		if f := bobC.expect("error"); f.Error == nil || f.Error.Code == nil || *f.Error.Code != "stream_of_another_key" {
			t.Fatalf("%s by another key: %+v", typ, f)
		}
	}
	// Over SSE too, the stream is ann's alone.
	req, _ := http.NewRequest("GET", e.URL+"/v1/streams/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob reading ann's WebSocket stream over SSE: %s", resp.Status)
	}
	if evs := annC.untilEnd(id); evs[len(evs)-1].Data != "[DONE]" {
		t.Fatalf("ann's stream ended with %q", evs[len(evs)-1].Data)
	}

	// WebSocket connections count against the streams per address: two
	// are open, a third is refused, and closing one frees its place.
	if _, resp, err := dial(ann); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a third connection from one address: %v (%v)", resp, err)
	}
	bobC.c.Close(websocket.StatusNormalClosure, "")
	testenv.Eventually(t, "the closed connection's place to be given back", func() bool {
		c, _, err := dial(ann)
		if err != nil {
			return false
		}
		c.c.CloseNow()
		return true
	})
}
