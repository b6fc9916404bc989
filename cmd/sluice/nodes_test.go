package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/internal/testenv"
)

// sseEvent is an event as a client reads it off the wire.
type sseEvent struct {
	ID, Data string
	At       time.Time // when it was read
}

// readEvents reads resp's events in a goroutine into the channel it
// returns, which is closed when the stream ends.
func readEvents(resp *http.Response) <-chan sseEvent {
	out := make(chan sseEvent, 1024)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var ev sseEvent
		for {
			line, err := br.ReadString('\n')
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			case line == "" && ev.Data != "":
				ev.At = time.Now()
				out <- ev
				ev = sseEvent{}
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

// get sends a GET with header's name, value pairs, closed when the test
// ends.
func get(t *testing.T, url string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// startChat starts a streamed chat on url and returns its stream ID and
// its events.
func startChat(t *testing.T, url, prompt string) (string, <-chan sseEvent) {
	t.Helper()
	body := `{"model":"demo","stream":true,"messages":[{"role":"user","content":"` + prompt + `"}]}`
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat on %s: %s", url, resp.Status)
	}
	return resp.Header.Get("Sluice-Stream-ID"), readEvents(resp)
}

// attach follows stream id on url from after (empty: the start).
func attach(t *testing.T, url, id, after string) <-chan sseEvent {
	t.Helper()
	resp := get(t, url+"/v1/streams/"+id, "Last-Event-ID", after)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("attach to %s on %s: %s", id, url, resp.Status)
	}
	return readEvents(resp)
}

// drain collects the rest of a stream's events, failing t if it does not
// end within limit.
func drain(t *testing.T, evs <-chan sseEvent, limit time.Duration) []sseEvent {
	t.Helper()
	var out []sseEvent
	deadline := time.After(limit)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("the stream did not end within %v; it has %d events so far", limit, len(out))
		}
	}
}

// TestALostNodesGenerationEndsWithNodeLostOnTheOthers runs a generation
// on a node in a process of its own, followed by readers on two other
// nodes, then kills or freezes that node: each reader gets one node_lost
// event within the 5 s (the lease's bound is 4 s), the same one,
// and then the end of its stream. A frozen node that wakes up writes no
// more to the stream and serves on.
func TestALostNodesGenerationEndsWithNodeLostOnTheOthers(t *testing.T) {
	const target = 5 * time.Second
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"kill -9", syscall.SIGKILL}, {"frozen", syscall.SIGSTOP}} {
		t.Run(tc.name, func(t *testing.T) {
			r := testenv.StartRedis(t)
			a := startChild(t, "--redis-url", r.URL, "--demo-ttft", "0s", "--demo-tps", "20")
			b, _ := startServe(t, "--redis-url", r.URL)
			c, _ := startServe(t, "--redis-url", r.URL)

			id, onA := startChat(t, a.URL, "tell me a long story about rivers and the sea")
			readers := []<-chan sseEvent{attach(t, b, id, ""), attach(t, c, id, "")}
			for i, rd := range readers {
				if ev := <-rd; ev.Data == "" {
					t.Fatalf("reader %d: no first event", i)
				}
			}
			<-onA
			a.signal(t, tc.sig)
			lost := time.Now()

			var endings []sseEvent
			for i, rd := range readers {
				evs := drain(t, rd, 3*target)
				if len(evs) == 0 {
					t.Fatalf("reader %d got nothing after the node was lost", i)
				}
				last := evs[len(evs)-1]
				if !strings.Contains(last.Data, `"code":"node_lost"`) {
					t.Fatalf("reader %d's stream ended with %q; want the node_lost error", i, last.Data)
				}
				if took := last.At.Sub(lost); took > target {
					t.Fatalf("reader %d got node_lost %v after the node was lost; want within %v", i, took, target)
				}
				for _, ev := range evs[:len(evs)-1] {
					if strings.Contains(ev.Data, "node_lost") || strings.Contains(ev.Data, `"error"`) {
						t.Fatalf("reader %d got %q before its end", i, ev.Data)
					}
				}
				endings = append(endings, last)
			}
			if endings[0].ID != endings[1].ID {
				t.Fatalf("the readers' endings differ: %s and %s: the log was ended twice", endings[0].ID, endings[1].ID)
			}
			t.Logf("%s: node_lost reached the readers %v and %v after the node was lost", tc.name, endings[0].At.Sub(lost), endings[1].At.Sub(lost))

			if tc.sig != syscall.SIGSTOP {
				return
			}
			a.signal(t, syscall.SIGCONT)
			// The woken node's generation finds its lease lapsed and stops;
			// its own reader gets the same ending, and nothing after it.
			evs := drain(t, onA, 3*target)
			if len(evs) == 0 || evs[len(evs)-1].ID != endings[0].ID {
				t.Fatalf("the woken node's reader ended with %v; want the node_lost event %s", evs[len(evs)-1:], endings[0].ID)
			}
			full := drain(t, attach(t, b, id, ""), 3*target)
			if last := full[len(full)-1]; last.ID != endings[0].ID {
				t.Fatalf("the stream goes on past its node_lost ending, to %q", last.Data)
			}
			// It serves on: a new answer streams, readable from another node.
			next, _ := startChat(t, a.URL, "hello again")
			if ev := <-attach(t, b, next, ""); !strings.Contains(ev.Data, "chat.completion.chunk") {
				t.Fatalf("the woken node's next chat, read on another node: %q", ev.Data)
			}
		})
	}
}

// TestRedisLeaseSetsHowSoonALostNodeIsFound runs nodes with --redis-lease
// 1s and kills the generating one: the readers on the other node get
// node_lost within the lease and a third of it, under 2 s, sooner than the
// default lease of 3 s can find a lost node (its lease lapses 2 to 3 s
// after the kill).
func TestRedisLeaseSetsHowSoonALostNodeIsFound(t *testing.T) {
	const bound = 2 * time.Second
	r := testenv.StartRedis(t)
	a := startChild(t, "--redis-url", r.URL, "--redis-lease", "1s", "--demo-ttft", "0s", "--demo-tps", "20")
	b, _ := startServe(t, "--redis-url", r.URL, "--redis-lease", "1s")
	id, onA := startChat(t, a.URL, "tell me a long story about rivers and the sea")
	rd := attach(t, b, id, "")
	if ev := <-rd; ev.Data == "" {
		t.Fatal("the reader on B: no first event")
	}
	<-onA
	a.signal(t, syscall.SIGKILL)
	lost := time.Now()
	evs := drain(t, rd, 10*time.Second)
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"code":"node_lost"`) {
		t.Fatalf("the reader on B ended with %v; want the node_lost error", evs[max(len(evs)-1, 0):])
	}
	if took := evs[len(evs)-1].At.Sub(lost); took > bound {
		t.Fatalf("node_lost came %v after the kill; with a lease of 1 s, want within %v", took, bound)
	} else {
		t.Logf("node_lost came %v after the kill", took)
	}
}

// TestCancelOnAnyNodeStopsTheGenerationWhereItRuns cancels a generation
// that node A runs through node B, over HTTP and over /ws: every reader,
// on A and on B, gets the cancelled event last, and B answers the real
// status, "cancelled".
func TestCancelOnAnyNodeStopsTheGenerationWhereItRuns(t *testing.T) {
	r := testenv.StartRedis(t)
	a, _ := startServe(t, "--redis-url", r.URL, "--demo-ttft", "0s", "--demo-tps", "20")
	b, _ := startServe(t, "--redis-url", r.URL)
	for _, via := range []string{"POST", "/ws"} {
		t.Run(via, func(t *testing.T) {
			id, onA := startChat(t, a, "tell me a long story about rivers and the sea")
			onB := attach(t, b, id, "")
			<-onA
			<-onB
			var status string
			switch via {
			case "POST":
				resp, err := http.Post(b+"/v1/streams/"+id+"/cancel", "application/json", nil)
				if err != nil {
					t.Fatal(err)
				}
				var body struct{ Status string }
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || err != nil {
					t.Fatalf("cancel on B: %s, %v", resp.Status, err)
				}
				status = body.Status
			case "/ws":
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				wc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b, "http")+"/ws", nil)
				if err != nil {
					t.Fatal(err)
				}
				defer wc.CloseNow()
				if err := wc.Write(ctx, websocket.MessageText, []byte(`{"type":"stream.cancel","id":"c1","stream":"`+id+`"}`)); err != nil {
					t.Fatal(err)
				}
				_, msg, err := wc.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var reply struct{ Type, Status string }
				if err := json.Unmarshal(msg, &reply); err != nil || reply.Type != "cancelled" {
					t.Fatalf("stream.cancel on B answered %s", msg)
				}
				status = reply.Status
			}
			if status != "cancelled" {
				t.Fatalf("cancel through B answered status %q; want cancelled", status)
			}
			for node, evs := range map[string]<-chan sseEvent{"A": onA, "B": onB} {
				got := drain(t, evs, 10*time.Second)
				if len(got) == 0 || !strings.Contains(got[len(got)-1].Data, `"code":"cancelled"`) {
					t.Fatalf("the reader on %s ended with %v; want the cancelled event", node, got[max(len(got)-1, 0):])
				}
			}
		})
	}
}

// TestADrainedReaderResumesOnAnotherNodeWithTheSameTranscript shuts node
// A down (SIGTERM) while a reader follows a generation that A runs: the
// reader is told to reconnect at once, resumes on node B from its
// Last-Event-ID, and reads there what is left; what it read on both is
// the uninterrupted stream, which A's generation finished within the
// grace.
func TestADrainedReaderResumesOnAnotherNodeWithTheSameTranscript(t *testing.T) {
	r := testenv.StartRedis(t)
	a, stopA := startServe(t, "--redis-url", r.URL, "--demo-ttft", "0s", "--demo-tps", "100", "--shutdown-grace", "20s")
	b, _ := startServe(t, "--redis-url", r.URL)

	id, whole := startChat(t, a, "tell me about rivers") // a few seconds' worth of tokens
	onA := attach(t, a, id, "")
	var read []sseEvent
	for range 3 {
		read = append(read, <-onA)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stopA() }()
	read = append(read, drain(t, onA, 5*time.Second)...)
	if last := read[len(read)-1]; last.Data == "[DONE]" {
		t.Fatal("the reader on A read the whole stream: it was not drained before the generation ended")
	}
	read = append(read, drain(t, attach(t, b, id, read[len(read)-1].ID), 30*time.Second)...)

	want := drain(t, whole, 30*time.Second) // the chat's own response stays on A to the end
	if err := <-stopped; err != nil {
		t.Fatalf("A's shutdown: %v", err)
	}
	if len(want) == 0 || want[len(want)-1].Data != "[DONE]" {
		t.Fatalf("A's generation did not finish within the grace: it ended with %v", want[max(len(want)-1, 0):])
	}
	if len(read) != len(want) {
		t.Fatalf("the reader read %d events over A and B; the stream has %d", len(read), len(want))
	}
	for i := range want {
		if read[i].ID != want[i].ID || read[i].Data != want[i].Data {
			t.Fatalf("event %d: read %s %q, the stream has %s %q", i, read[i].ID, read[i].Data, want[i].ID, want[i].Data)
		}
	}
}

// TestRedisLostWhileStreamingAndBack stops Redis under a generation:
// every reader, on the generating node and another, gets an error event
// and the end of its stream; new requests get 503 with Retry-After while
// /healthz stays live; and once Redis is back (restarted, empty, on the
// same port) the nodes serve again by themselves.
func TestRedisLostWhileStreamingAndBack(t *testing.T) {
	r := testenv.StartRedis(t)
	a, _ := startServe(t, "--redis-url", r.URL, "--demo-ttft", "0s", "--demo-tps", "20")
	b, _ := startServe(t, "--redis-url", r.URL, "--demo-ttft", "0s", "--demo-tps", "0")

	id, onA := startChat(t, a, "tell me a long story about rivers and the sea")
	readers := map[string]<-chan sseEvent{"the chat on A": onA, "a reader on A": attach(t, a, id, ""), "a reader on B": attach(t, b, id, "")}
	for who, rd := range readers {
		if ev := <-rd; ev.Data == "" {
			t.Fatalf("%s: no first event", who)
		}
	}
	r.Stop()
	for who, rd := range readers {
		evs := drain(t, rd, 10*time.Second)
		if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Data, `"error"`) || evs[len(evs)-1].ID != "" {
			t.Fatalf("%s ended with %v; want an error event without an ID", who, evs[max(len(evs)-1, 0):])
		}
	}

	body := `{"model":"demo","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	for _, node := range []string{a, b} {
		resp, err := http.Post(node+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("a chat with Redis down: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
		}
		if resp := get(t, node+"/v1/streams/"+id); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("a resume with Redis down: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
		}
		if resp := get(t, node+"/healthz"); resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz with Redis down: %s; want 200: the process is alive", resp.Status)
		}
	}

	r.Restart(t)
	testenv.Eventually(t, "both nodes to serve again", func() bool {
		for _, node := range []string{a, b} {
			resp, err := http.Post(node+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				return false
			}
			t.Cleanup(func() { resp.Body.Close() })
			next := resp.Header.Get("Sluice-Stream-ID")
			if ev := <-readEvents(resp); !strings.Contains(ev.Data, "chat.completion.chunk") {
				t.Fatalf("a chat on %s after Redis came back began with %q", node, ev.Data)
			}
			other := map[string]string{a: b, b: a}[node]
			if ev := <-attach(t, other, next, ""); !strings.Contains(ev.Data, "chat.completion.chunk") {
				t.Fatalf("the chat of %s, read on the other node after Redis came back, began with %q", node, ev.Data)
			}
		}
		return true
	})
}
