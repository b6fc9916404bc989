package testenv

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sse"
)

// Event is an SSE event as a chaos client compares it: its ID and data.
type Event struct{ ID, Data string }

// Terminal reports whether e ends a chat stream: [DONE] or an error.
func (e Event) Terminal() bool { return e.Data == "[DONE]" || strings.HasPrefix(e.Data, `{"error":`) }

// ReadCut reads events from resp until the stream ends (ended) or cut
// bytes have come, and closes it; an event cut in half is dropped, as
// EventSource drops it.
func ReadCut(resp *http.Response, cut int64) (evs []Event, ended bool, err error) {
	defer resp.Body.Close()
	rd := sse.NewReader(io.LimitReader(resp.Body, cut))
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return evs, false, nil
		}
		if err != nil {
			return evs, false, err
		}
		evs = append(evs, Event{ev.ID, ev.Data})
		if evs[len(evs)-1].Terminal() {
			return evs, true, nil
		}
	}
}

// Chaos runs clients streamed chats at once against the server at url,
// through c. Each cuts its connection at random bytes (mid-event too) one
// or more times and resumes with Last-Event-ID; then it reads the stream
// again whole, and its joined transcript must equal that one event for
// event, byte for byte, ending in [DONE]. Broken transcripts fail t. It
// returns how many drops (each followed by a resume) there were. seed
// makes the cuts the same from run to run.
func Chaos(t *testing.T, c *http.Client, url string, clients int, seed uint64) (drops int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	seeds := make([]uint64, clients)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	var dropped, events atomic.Int64
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, n, err := chaosClient(c, url, fmt.Sprintf("chaos %d", i%7), rand.New(rand.NewPCG(seeds[i], 7)))
			dropped.Add(int64(d))
			events.Add(int64(n))
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	t.Logf("%d clients, %d drops and resumes, %d events compared, in %v", clients, dropped.Load(), events.Load(), time.Since(start).Round(time.Millisecond))
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d clients got a broken transcript", n, clients)
	}
	return dropped.Load()
}

// chaosClient is one client of Chaos.
func chaosClient(c *http.Client, url, prompt string, rng *rand.Rand) (drops, events int, err error) {
	do := func(req *http.Request) (*http.Response, error) {
		resp, err := c.Do(req)
		if err == nil && resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
		}
		return resp, err
	}
	body := fmt.Sprintf(`{"model":"demo","stream":true,"messages":[{"role":"user","content":%q}]}`, prompt)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := do(req)
	if err != nil {
		return 0, 0, err
	}
	id := resp.Header.Get("Sluice-Stream-ID")
	resume := func(last string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/streams/"+id, nil)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		return do(req)
	}
	var got []Event
	for {
		cut := int64(1 << 40)
		if drops == 0 || rng.IntN(3) > 0 { // always once, often more
			cut = int64(rng.IntN(20000))
		}
		evs, ended, err := ReadCut(resp, cut)
		got = append(got, evs...)
		if err != nil {
			return drops, len(got), err
		}
		if ended {
			break
		}
		if drops++; drops > 100 {
			return drops, len(got), fmt.Errorf("no end after 100 resumes")
		}
		last := ""
		if len(got) > 0 {
			last = got[len(got)-1].ID
		}
		if resp, err = resume(last); err != nil {
			return drops, len(got), err
		}
	}
	if resp, err = resume(""); err != nil {
		return drops, len(got), err
	}
	whole, ended, err := ReadCut(resp, 1<<40)
	if err != nil || !ended {
		return drops, len(got), fmt.Errorf("uninterrupted read: ended %v, %v", ended, err)
	}
	if len(got) != len(whole) {
		return drops, len(got), fmt.Errorf("after %d drops: %d events, uninterrupted %d", drops, len(got), len(whole))
	}
	for k := range whole {
		if got[k] != whole[k] {
			return drops, len(got), fmt.Errorf("after %d drops: event %d is %+v, uninterrupted %+v", drops, k, got[k], whole[k])
		}
	}
	if whole[len(whole)-1].Data != "[DONE]" {
		return drops, len(got), fmt.Errorf("the stream ended with %q", whole[len(whole)-1].Data)
	}
	return drops, len(got), nil
}
