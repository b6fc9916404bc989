package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// outcome is how one reader fared through a Redis restart.
type outcome struct {
	what string // "done", "error event", or the answer to its last resume
	last string // the data of the terminal event, if any
	err  error  // the reader hung or broke a promise
}

// followThrough reads generation id through nginx from just after last,
// resuming with Last-Event-ID whenever the connection ends without a
// terminal event, until the stream ends (with [DONE] or an error event) or
// a resume is answered with something other than a stream (the log is
// gone, or the store is down). It never waits more than bound in all.
func followThrough(ctx context.Context, url, id string, resp *http.Response, bound time.Duration) outcome {
	deadline := time.Now().Add(bound)
	last := ""
	for resumes := 0; ; resumes++ {
		if time.Now().After(deadline) {
			return outcome{err: fmt.Errorf("no end within %v (%d resumes)", bound, resumes)}
		}
		if resp != nil {
			ended, data, err := readToEnd(resp, &last, deadline)
			if err != nil {
				return outcome{err: err}
			}
			if ended {
				if data == "[DONE]" {
					return outcome{what: "done", last: data}
				}
				return outcome{what: "error event", last: data}
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/streams/"+id, nil)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		r, err := client.Do(req)
		if err != nil {
			return outcome{err: err}
		}
		if r.StatusCode != http.StatusOK {
			r.Body.Close()
			if r.StatusCode == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "" {
				return outcome{err: errors.New("503 without Retry-After")}
			}
			if r.StatusCode >= 500 && r.StatusCode != http.StatusServiceUnavailable {
				return outcome{err: fmt.Errorf("resume: %s", r.Status)}
			}
			if r.StatusCode == http.StatusServiceUnavailable {
				// The store is down: the client waits as told, and tries again.
				time.Sleep(200 * time.Millisecond)
				resp = nil
				continue
			}
			return outcome{what: fmt.Sprint(r.StatusCode)}
		}
		resp = r
	}
}

// readToEnd reads resp's events, keeping the last ID in *last, until a
// terminal event or the end of the connection. A stream still open at the
// deadline is an error: a reader must never wait for ever.
func readToEnd(resp *http.Response, last *string, deadline time.Time) (ended bool, data string, err error) {
	defer resp.Body.Close()
	timer := time.AfterFunc(time.Until(deadline), func() { resp.Body.Close() })
	defer timer.Stop()
	rd := sse.NewReader(resp.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			if time.Now().After(deadline) {
				return false, "", errors.New("the stream was still open at the deadline, with no terminal event")
			}
			return false, "", nil // the connection ended: resume
		}
		if ev.ID != "" {
			*last = ev.ID
		}
		if e := (testenv.Event{ID: ev.ID, Data: ev.Data}); e.Terminal() {
			return true, ev.Data, nil
		}
	}
}

// TestARedisRestartMidStreamLeavesNoReaderHanging restarts Redis (empty:
// a crash without persistence) while generations stream through nginx and
// topic readers wait on every node. Every reader then gets an error event,
// or a definite answer to its resume, or its stream to the end; none
// hangs. Afterwards every node serves new chats and topics by itself.
func TestARedisRestartMidStreamLeavesNoReaderHanging(t *testing.T) {
	const gens = 30
	c := newCluster(t, "--demo-ttft", "0s", "--demo-tps", "20")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type started struct {
		id   string
		resp *http.Response
	}
	var streams []started
	for i := range gens {
		resp, err := do(chatRequest(c.nginx.URL, fmt.Sprintf("tell me a long story %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		// The first event has come: the stream is live on its node.
		streams = append(streams, started{resp.Header.Get("Sluice-Stream-ID"), resp})
	}
	var topicEnds []chan error
	for _, n := range c.nodes {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/v1/topics/lobby/events", nil)
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("subscribe on %s: %v %v", n.URL, resp.Status, err)
		}
		end := make(chan error, 1)
		topicEnds = append(topicEnds, end)
		go func() {
			defer resp.Body.Close()
			_, err := io.Copy(io.Discard, resp.Body) // until the node ends it
			end <- err
		}()
	}

	c.redis.Restart(t)
	restarted := time.Now()

	const bound = 30 * time.Second
	outcomes := make([]outcome, gens)
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes[i] = followThrough(ctx, c.nginx.URL, s.id, s.resp, bound)
		}()
	}
	wg.Wait()
	tally := map[string]int{}
	for i, o := range outcomes {
		if o.err != nil {
			t.Errorf("stream %d (%s): %v", i, streams[i].id, o.err)
		}
		tally[o.what]++
	}
	t.Logf("after the restart, in %v: %v", time.Since(restarted).Round(time.Millisecond), tally)
	// Topic readers on every node are told, one way or another.
	for i, end := range topicEnds {
		select {
		case <-end:
		case <-time.After(bound):
			t.Errorf("the topic reader on node %d still waits %v after Redis restarted", i, bound)
		}
	}

	// Every node recovers by itself: a new chat streams to its end there.
	for _, n := range c.nodes {
		var last string
		for {
			resp, err := client.Do(chatRequest(n.URL, "after the restart"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusServiceUnavailable && time.Since(restarted) < bound {
				resp.Body.Close()
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("a chat on %s after the restart: %s", n.URL, resp.Status)
			}
			evs, ended, err := testenv.ReadCut(resp, 1<<40)
			if err != nil || !ended {
				t.Fatalf("a chat on %s after the restart: ended %v, %v", n.URL, ended, err)
			}
			last = evs[len(evs)-1].Data
			break
		}
		if last != "[DONE]" {
			t.Fatalf("a chat on %s after the restart ended with %q", n.URL, last)
		}
	}
}
