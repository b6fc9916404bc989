package openai_test

import (
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/openai"
)

// tally is an openai.Observer that counts what it is told, by kind and
// label.
type tally struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *tally) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
}

func (c *tally) Attempt(u string)         { c.add("attempt " + u) }
func (c *tally) Retry(u string)           { c.add("retry " + u) }
func (c *tally) Fallback(from, to string) { c.add("fallback " + from + " " + to) }
func (c *tally) Failed(u, kind string)    { c.add("failed " + u + " " + kind) }

// TestObserverCountsAttemptsRetriesFallbacksAndErrors sends one chat to an
// upstream that cannot be reached, tried twice, then to its fallback,
// which is busy once and then answers: the observer counts each attempt,
// retry, failure (by upstream and code) and the move to the fallback.
func TestObserverCountsAttemptsRetriesFallbacksAndErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	backup := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			refuse(w, http.StatusServiceUnavailable, "busy")
			return
		}
		answer(goodAnswer...)(n, w, r)
	})
	fb := upstream(t, backup.URL, openai.UpstreamOptions{Name: "backup"})
	primary := upstream(t, dead, openai.UpstreamOptions{Name: "primary", MaxAttempts: 2, Fallback: fb})
	obs := &tally{}
	n := newNode(t, api.Config{}, map[string]sluice.Model{"up": openai.New(openai.Options{Upstream: primary, Model: "m", Observer: obs})})

	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), goodSeen)
	want := map[string]int{
		"attempt primary": 2, "retry primary": 1, "failed primary upstream_unreachable": 2,
		"fallback primary backup": 1,
		"attempt backup":          2, "retry backup": 1, "failed backup upstream_unavailable": 1,
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.n) != len(want) {
		t.Fatalf("observed %v, want %v", obs.n, want)
	}
	for k, v := range want {
		if obs.n[k] != v {
			t.Fatalf("observed %v, want %v", obs.n, want)
		}
	}
}
