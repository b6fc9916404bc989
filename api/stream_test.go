package api_test

import (
	"bufio"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// TestResumeJoinsToTheUninterruptedText reads part of a stream, drops the
// connection, resumes with Last-Event-ID and checks that the joined text is
// the uninterrupted one, with no event lost or repeated.
func TestResumeJoinsToTheUninterruptedText(t *testing.T) {
	e := newEnv(t, envOptions{Demo: demo.Options{TokensPerSecond: 2000}})
	whole := events(t, e.Get(t, "/v1/streams/"+startStream(t, e, "resume me")), -1)
	wantText, _ := content(t, whole)

	for _, cut := range []int{1, 2, 7, len(whole) / 2, len(whole) - 2, len(whole) - 1} {
		resp := e.Post(t, "/v1/chat/completions", chatBody("resume me"))
		id := resp.Header.Get("Sluice-Stream-ID")
		part := events(t, resp, cut)
		resp.Body.Close() // the client drops the connection mid-answer
		lastID := part[len(part)-1].ID

		for _, how := range []string{"header", "query"} {
			var rest *http.Response
			if how == "header" {
				rest = e.Get(t, "/v1/streams/"+id, "Last-Event-ID", lastID)
			} else {
				rest = e.Get(t, "/v1/streams/"+id+"?last_event_id="+lastID)
			}
			if rest.StatusCode != http.StatusOK {
				t.Fatalf("cut %d: resume by %s: %s", cut, how, rest.Status)
			}
			joined := append(append([]sse.Event{}, part...), events(t, rest, -1)...)
			text, last := content(t, joined)
			if text != wantText || last != "[DONE]" {
				t.Fatalf("cut %d, resume by %s: joined text differs or does not end in [DONE] (last %q)\n got %q\nwant %q", cut, how, last, text, wantText)
			}
			if len(joined) != len(whole) {
				t.Fatalf("cut %d: %d events joined, want %d", cut, len(joined), len(whole))
			}
			for i := 1; i < len(joined); i++ {
				if joined[i].ID == joined[i-1].ID {
					t.Fatalf("cut %d: event %s repeated", cut, joined[i].ID)
				}
			}
		}
	}
}

// TestStreamsOverHTTP2 covers the path where the hub cannot take the
// connection over: the handler serves the stream itself.
func TestStreamsOverHTTP2(t *testing.T) {
	e := newEnv(t, envOptions{HTTP2: true, Demo: demo.Options{TokensPerSecond: 2000}})
	resp := e.Post(t, "/v1/chat/completions", chatBody("over h2"))
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	id := resp.Header.Get("Sluice-Stream-ID")
	part := events(t, resp, 5)
	resp.Body.Close()
	rest := events(t, e.Get(t, "/v1/streams/"+id, "Last-Event-ID", part[4].ID), -1)
	whole := events(t, e.Get(t, "/v1/streams/"+id), -1)
	joined, last := content(t, append(part, rest...))
	want, _ := content(t, whole)
	if joined != want || last != "[DONE]" {
		t.Fatalf("over HTTP/2 the resumed text differs or does not end in [DONE] (%q)", last)
	}
}

func startStream(t *testing.T, e *env, prompt string) string {
	t.Helper()
	resp := e.Post(t, "/v1/chat/completions", chatBody(prompt))
	id := resp.Header.Get("Sluice-Stream-ID")
	resp.Body.Close()
	return id
}

func TestManyReadersFollowOneGeneration(t *testing.T) {
	step := &stepModel{Tokens: strings.Split("one two three four five", " "), Step: make(chan struct{})}
	e := newEnv(t, envOptions{Models: map[string]sluice.Model{"step": step}})
	first := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"))
	id := first.Header.Get("Sluice-Stream-ID")

	const readers = 5
	texts := make([]string, readers+1)
	var wg sync.WaitGroup
	for i := range readers {
		resp := e.Get(t, "/v1/streams/"+id)
		if resp.Header.Get("Sluice-Stream-ID") != id {
			t.Fatalf("attach answered stream %q", resp.Header.Get("Sluice-Stream-ID"))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			texts[i], _ = content(t, events(t, resp, -1))
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		texts[readers], _ = content(t, events(t, first, -1))
	}()
	close(step.Step)
	wg.Wait()
	for i, text := range texts {
		if text != "onetwothreefourfive" {
			t.Errorf("reader %d got %q", i, text)
		}
	}
}

func TestAttachErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := startStream(t, e, "short")
	whole := events(t, e.Get(t, "/v1/streams/"+id), -1)
	lastID := whole[len(whole)-1].ID
	// An ID of this stream's incarnation that it never issued: the memory
	// store's IDs are "<seq>-<epoch>".
	neverIssued := "999999" + lastID[strings.IndexByte(lastID, '-'):]

	tests := []struct {
		name   string
		path   string
		header []string
		status int
	}{
		{"unknown stream", "/v1/streams/0123456789abcdef0123456789abcdef", nil, 404},
		{"id never issued", "/v1/streams/" + id, []string{"Last-Event-ID", neverIssued}, 400},
		{"id not an id", "/v1/streams/" + id + "?last_event_id=abc", nil, 400},
		{"id of another incarnation", "/v1/streams/" + id, []string{"Last-Event-ID", "999999"}, 200},
		{"past the end", "/v1/streams/" + id, []string{"Last-Event-ID", lastID}, 204},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := e.Get(t, tt.path, tt.header...)
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status >= 400 {
				if eb := decode[errorBody](t, resp); eb.Error.Message == "" {
					t.Fatal("no error message")
				}
			}
		})
	}
}

func TestExpiredStreamIs404(t *testing.T) {
	e := newEnv(t, envOptions{Retention: 10 * time.Millisecond})
	id := startStream(t, e, "short")
	testenv.Eventually(t, "the stream to be forgotten after its retention", func() bool {
		resp := e.Get(t, "/v1/streams/"+id)
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	})
}

func TestCancelEndsEveryReader(t *testing.T) {
	step := &stepModel{Tokens: []string{"a", "b", "c"}, Step: make(chan struct{})}
	e := newEnv(t, envOptions{Models: map[string]sluice.Model{"step": step}})
	first := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"))
	id := first.Header.Get("Sluice-Stream-ID")
	second := e.Get(t, "/v1/streams/"+id)
	step.Step <- struct{}{} // one token, then cancel

	resp := e.Post(t, "/v1/streams/"+id+"/cancel", "")
	st := decode[struct{ ID, Status string }](t, resp)
	if resp.StatusCode != 200 || st.Status != "cancelled" {
		t.Fatalf("cancel: %s %+v", resp.Status, st)
	}
	for _, r := range []*http.Response{first, second} {
		text, last := content(t, events(t, r, -1))
		if text != "a" || !strings.Contains(last, `"code":"cancelled"`) {
			t.Errorf("reader got %q and ended with %q", text, last)
		}
	}
	if step.StoppedBy() == nil {
		t.Error("the model was not stopped")
	}
	// Cancelling again is harmless; an unknown stream is 404.
	if resp := e.Post(t, "/v1/streams/"+id+"/cancel", ""); resp.StatusCode != 200 {
		t.Errorf("second cancel: %s", resp.Status)
	}
	if resp := e.Post(t, "/v1/streams/nope/cancel", ""); resp.StatusCode != 404 {
		t.Errorf("cancel of unknown stream: %s", resp.Status)
	}
}

func TestGenerationOutlivesItsFirstReader(t *testing.T) {
	step := &stepModel{Tokens: []string{"a", "b"}, Step: make(chan struct{})}
	e := newEnv(t, envOptions{Models: map[string]sluice.Model{"step": step}})
	resp := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"))
	id := resp.Header.Get("Sluice-Stream-ID")
	resp.Body.Close()
	close(step.Step)
	text, last := content(t, events(t, e.Get(t, "/v1/streams/"+id), -1))
	if text != "ab" || last != "[DONE]" {
		t.Fatalf("after the first reader left: %q, %q", text, last)
	}
}

func TestCancelOnDisconnectStopsTheModel(t *testing.T) {
	step := &stepModel{Tokens: []string{"a", "b"}, Step: make(chan struct{})}
	e := newEnv(t, envOptions{Models: map[string]sluice.Model{"step": step}})
	resp := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"), "Sluice-Cancel-On-Disconnect", "true")
	id := resp.Header.Get("Sluice-Stream-ID")
	events(t, resp, 1)
	resp.Body.Close()
	_, last := content(t, events(t, e.Get(t, "/v1/streams/"+id), -1))
	if !strings.Contains(last, `"cancelled"`) {
		t.Fatalf("stream ended with %q, want a cancellation", last)
	}
	if step.StoppedBy() == nil {
		t.Fatal("the model was not stopped")
	}
}

func TestModelErrorEndsWithErrorEvent(t *testing.T) {
	failing := &stepModel{Tokens: []string{"par", "tial"}, Fail: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_reset", Message: "The model connection was reset."}}
	e := newEnv(t, envOptions{Models: map[string]sluice.Model{"bad": failing}})
	text, last := content(t, events(t, e.Post(t, "/v1/chat/completions", chatBody("x", "model", "bad")), -1))
	if text != "partial" || !strings.HasPrefix(last, `{"error":{"message":"The model connection was reset."`) {
		t.Fatalf("got %q, last %q", text, last)
	}
	resp := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "bad", "stream", false))
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("non-streamed failure: %s", resp.Status)
	}
	if eb := decode[errorBody](t, resp); *eb.Error.Code != "upstream_reset" {
		t.Fatalf("code %v", *eb.Error.Code)
	}
}

// TestWireFraming checks the bytes: retry once, then id and data lines,
// heartbeats while the model thinks.
func TestWireFraming(t *testing.T) {
	step := &stepModel{Tokens: []string{"line1\nline2"}, Step: make(chan struct{})}
	e := newEnv(t, envOptions{API: api.Config{Heartbeat: 200 * time.Millisecond}, Models: map[string]sluice.Model{"step": step}})
	resp := e.Post(t, "/v1/chat/completions", chatBody("x", "model", "step"))
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if l := readLine(t, br); !strings.HasPrefix(l, "retry: ") {
		t.Fatalf("first line %q, want retry:", l)
	}
	// In the block of the first event: a block of its own would be an
	// empty message to some clients.
	if l := readLine(t, br); !strings.HasPrefix(l, "id: ") {
		t.Fatalf("line %q, want the first id", l)
	}
	readLine(t, br) // the role chunk
	readLine(t, br)
	// The model is thinking: pings keep the connection alive.
	if l := readLine(t, br); l != ": ping\n" {
		t.Fatalf("line %q, want a heartbeat", l)
	}
	close(step.Step)
	var rest strings.Builder
	for {
		l, err := br.ReadString('\n')
		rest.WriteString(l)
		if err != nil {
			break
		}
	}
	if strings.Contains(rest.String(), "\r") || strings.Contains(rest.String(), "retry:") {
		t.Fatalf("stray \\r or a second retry: %q", rest.String())
	}
	if !strings.HasSuffix(rest.String(), "data: [DONE]\n\n") {
		t.Fatalf("stream does not end with [DONE]: %q", rest.String())
	}
}
