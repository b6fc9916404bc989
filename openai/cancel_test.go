package openai_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/openai"
)

// endless is an upstream that answers two pieces, then thinks until its
// request is closed, which it reports on gone.
func endless(t *testing.T) (*fake, chan struct{}) {
	gone := make(chan struct{})
	f := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		send(w, roleChunk, content("Hel"), content("lo"))
		<-r.Context().Done()
		close(gone)
	})
	return f, gone
}

func TestCancelClosesTheUpstreamRequest(t *testing.T) {
	f, gone := endless(t)
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))
	s := openStream(t, resp)
	for range 3 {
		s.next()
	}
	cancel := post(t, n.URL+"/v1/streams/"+resp.Header.Get(api.HeaderStreamID)+"/cancel", "")
	if cancel.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %s", cancel.Status)
	}
	within(t, gone, 2*time.Second, "closing the upstream request on cancel")
	equal(t, seen(t, s.rest()), []string{"error cancelled: The generation was cancelled."})
}

func TestClientDisconnectClosesTheUpstreamRequestWhenAsked(t *testing.T) {
	f, gone := endless(t)
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi"), api.HeaderCancelOnDisconnect, "true")
	s := openStream(t, resp)
	for range 3 {
		s.next()
	}
	resp.Body.Close()
	within(t, gone, 2*time.Second, "closing the upstream request when the client left")
}

func TestStreamStopsAtOnceAndKeepsTheUsageSoFarWhenCancelled(t *testing.T) {
	f, gone := endless(t)
	m := openai.New(openai.Options{Upstream: upstream(t, f.URL, openai.UpstreamOptions{}), Model: "m"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []sluice.Delta
	usage, err := m.Stream(ctx, &sluice.ChatRequest{Model: "up", Messages: []sluice.Message{{Role: "user", Content: []byte(`"hi"`)}}},
		func(d sluice.Delta) error {
			got = append(got, d)
			if d.Content == "lo" {
				cancel()
			}
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream returned %v, want context.Canceled", err)
	}
	if usage.CompletionTokens != 2 || len(got) != 3 {
		t.Fatalf("usage %+v after %d deltas, want the 2 pieces counted", usage, len(got))
	}
	within(t, gone, 2*time.Second, "closing the upstream request on cancel")
}
