package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// TestAReaderAheadOfRedisLooksAtABoundedPace: a client that resumes on
// node B after an ID that node A's writer may have handed its own readers
// before Redis stored it (a few events past the newest stored) waits for
// it and then reads on from there; while it waits, B looks at Redis a few
// dozen times a second, not a thousand (a node's readers that all resumed
// so after their writer was lost would otherwise flood Redis for the
// lease bound).
func TestAReaderAheadOfRedisLooksAtABoundedPace(t *testing.T) {
	r := testenv.StartRedis(t)
	o := envOptions{Demo: demo.Options{TokensPerSecond: 5}}
	a, b := redisNode(t, r, o), redisNode(t, r, o)
	resp := do(t, a, "POST", "/v1/chat/completions", chatBody("a long story"))
	defer resp.Body.Close()
	id := resp.Header.Get("Sluice-Stream-ID")
	t.Cleanup(func() { // the answer would run past the servers' shutdown grace
		if resp, err := b.Client.Post(b.URL+"/v1/streams/"+id+"/cancel", "", nil); err == nil {
			resp.Body.Close()
		}
	})
	first, err := sse.NewReader(resp.Body).Next()
	if err != nil {
		t.Fatal(err)
	}
	const ahead = 5 // a second of tokens at 5 a second
	after := testenv.LaterID(t, first.ID, ahead)

	before, start := r.Calls(t), time.Now()
	req, _ := http.NewRequest("GET", b.URL+"/v1/streams/"+id, nil)
	req.Header.Set("Last-Event-ID", after)
	resumed, err := b.Client.Do(req)
	if err != nil || resumed.StatusCode != http.StatusOK {
		t.Fatalf("resume on b after %s: %v %v", after, resumed.Status, err)
	}
	defer resumed.Body.Close()
	ev, err := sse.NewReader(resumed.Body).Next()
	if want := testenv.LaterID(t, first.ID, ahead+1); err != nil || ev.ID != want {
		t.Fatalf("b's first event after %s: %q (%v), want %s", after, ev.ID, err, want)
	}
	waited := time.Since(start)
	spent := r.Calls(t) - before
	// A's appends (one script a token, rounds of them at most), its lease
	// renewals and b's own subscription come to a few a second; b's looks
	// are bounded at 50 a second by fanout.Backoff, each a few commands:
	// about 200 a second in all, where a millisecond's spin came to 1,800.
	if rate := float64(spent) / waited.Seconds(); rate > 600 {
		t.Fatalf("Redis ran %d commands in the %v b's reader waited: %.0f a second", spent, waited.Round(time.Millisecond), rate)
	}
	t.Logf("Redis ran %d commands in the %v b's reader waited", spent, waited.Round(time.Millisecond))
}
