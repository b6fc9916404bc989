package openai_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/openai"
	"github.com/sluice-dev/sluice/sse"
)

func TestUpstreamSplitAtEveryByteGivesTheWholeAnswer(t *testing.T) {
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		t.Run(fmt.Sprintf("%q", eol), func(t *testing.T) {
			frames := append([]string{": keep-alive\n\n", roleChunk, content("Héllo, 世界 🌍 \"quoted\"\\n")}, goodAnswer[2:]...)
			all := strings.ReplaceAll(strings.Join(frames, ""), "\n", eol)
			f := newFake(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				sseHeaders(w)
				for i := range len(all) {
					send(w, all[i:i+1])
				}
			})
			n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
			got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi", "stream_options", map[string]any{"include_usage": true}))).rest()
			equal(t, seen(t, got), []string{`{"role":"assistant","content":""}`, `{"content":"Héllo, 世界 🌍 \"quoted\"\\n"}`,
				`{"content":" world"}`, `{} finish stop`, "usage 9+2=11", "[DONE]"})
		})
	}
}

func TestUpstreamOneMegabyteLinesPassWhole(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB of content in one line
	reasoning := strings.Repeat("why ", 1<<18)
	f := newFake(t, answer(roleChunk, chunk(`{"reasoning_content":"`+reasoning+`"}`, "null"), content(big), stopChunk, usageChunk, doneFrame))
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	if len(got) != 5 || text(t, got) != big {
		t.Fatalf("got %d events with %d bytes of text, want 5 events and %d bytes", len(got), len(text(t, got)), len(big))
	}
	if want := `{"reasoning_content":"` + reasoning + `"}`; describe(t, got[1].Data) != want {
		t.Fatalf("the reasoning chunk is not whole (%d bytes)", len(got[1].Data))
	}
	equal(t, seen(t, got[3:]), []string{`{} finish stop`, "[DONE]"})
}

func TestUpstreamStalledMidAnswerIsCutByTheIdleTimeout(t *testing.T) {
	gone := make(chan struct{})
	f := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		send(w, roleChunk, content("Hel"))
		<-r.Context().Done()
		close(gone)
	})
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{IdleTimeout: 100 * time.Millisecond}))
	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), []string{`{"role":"assistant","content":""}`, `{"content":"Hel"}`,
		`error upstream_stalled: The upstream "fake" sent nothing for 100ms in the middle of the answer; the answer is incomplete.`})
	within(t, gone, 5*time.Second, "closing the stalled upstream request")
	if f.requests() != 1 {
		t.Fatalf("the upstream got %d requests: an answer under way must never be replayed", f.requests())
	}
}

func TestUpstreamThatNeverStartsIsRetriedThenGivenUp(t *testing.T) {
	f := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		<-r.Context().Done()
	})
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{FirstTokenTimeout: 100 * time.Millisecond, MaxAttempts: 2}))
	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), []string{
		`error upstream_timeout: The upstream "fake" did not start answering within 100ms (gave up after 2 attempts in …).`})
	if f.requests() != 2 {
		t.Fatalf("the upstream got %d requests, want 2", f.requests())
	}
}

func TestUpstreamConnectionResetMidAnswerEndsWithAnError(t *testing.T) {
	reset, stop := make(chan struct{}), make(chan struct{})
	f := newFake(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for _, fr := range []string{roleChunk, content("Hel")} {
			fmt.Fprintf(bw, "%x\r\n%s\r\n", len(fr), fr)
		}
		bw.Flush()
		select {
		case <-reset:
		case <-stop:
		}
		conn.(*net.TCPConn).SetLinger(0) // a real reset (RST), not a clean close
	})
	t.Cleanup(func() { close(stop) })
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	s := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi")))
	var got []sse.Event
	for len(got) < 2 {
		ev, ok := s.next()
		if !ok {
			t.Fatal("the stream ended early")
		}
		got = append(got, ev)
	}
	close(reset) // only now: a reset may discard data not yet read
	got = append(got, s.rest()...)
	equal(t, seen(t, got), []string{`{"role":"assistant","content":""}`, `{"content":"Hel"}`,
		`error upstream_reset: The connection to the upstream "fake" broke in the middle of the answer; the answer is incomplete.`})
	if f.requests() != 1 {
		t.Fatalf("the upstream got %d requests: an answer under way must never be replayed", f.requests())
	}
}

func TestUpstreamResetBeforeTheFirstTokenIsRetried(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n > 1 {
			answer(goodAnswer...)(n, w, r)
			return
		}
		// Headers and the role, then a reset: no reader has seen a token.
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(roleChunk), roleChunk)
		bw.Flush()
		conn.(*net.TCPConn).SetLinger(0)
	})
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), goodSeen)
	if f.requests() != 2 {
		t.Fatalf("the upstream got %d requests, want 2", f.requests())
	}
}

func TestUpstreamErrorsSentUnder200EndTheStream(t *testing.T) {
	tests := []struct {
		name   string
		script func(int, http.ResponseWriter, *http.Request)
		want   []string
	}{
		{"mid-answer", answer(roleChunk, content("Hel"), data(`{"error":{"message":"Overloaded","type":"server_error","code":null}}`)),
			[]string{`{"role":"assistant","content":""}`, `{"content":"Hel"}`,
				`error upstream_error: The upstream "fake" failed in the middle of the answer: Overloaded`}},
		{"first event", answer(data(`{"error":{"message":"model is loading"}}`)),
			[]string{`error upstream_error: The upstream "fake" failed before answering: model is loading`}},
		{"string error", answer(roleChunk, data(`{"error":"out of memory"}`)),
			[]string{`error upstream_error: The upstream "fake" failed before answering: out of memory`}},
		{"error event", answer(roleChunk, content("Hi"), "event: error\ndata: {\"message\":\"boom\"}\n\n"),
			[]string{`{"role":"assistant","content":""}`, `{"content":"Hi"}`, `error upstream_error: The upstream "fake" failed in the middle of the answer: boom`}},
		{"JSON body", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"error":{"message":"no such tool"}}`))
		}, []string{`error upstream_error: The upstream "fake" answered with an error: no such tool`}},
		{"not JSON", answer(roleChunk, content("Hi"), data("<html>oops</html>")),
			[]string{`{"role":"assistant","content":""}`, `{"content":"Hi"}`,
				`error upstream_bad_response: The upstream "fake" sent an event that is not a chat completion chunk; the answer is incomplete.`}},
		{"HTML page", func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<html>Open WebUI</html>`))
		}, []string{`error upstream_bad_response: The upstream "fake" answered with text/html instead of an event stream; is its base_url right?`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, tt.script)
			n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
			got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
			equal(t, seen(t, got), tt.want)
			if f.requests() != 1 {
				t.Fatalf("the upstream got %d requests; its errors are not retried", f.requests())
			}
		})
	}
}

func TestUpstreamEndingWithoutDoneOrFinishReasonIsNeverComplete(t *testing.T) {
	tests := []struct {
		name     string
		frames   []string
		want     []string
		requests int
	}{
		{"no [DONE]", []string{roleChunk, content("Hel"), stopChunk, usageChunk},
			[]string{`{"role":"assistant","content":""}`, `{"content":"Hel"}`,
				`error upstream_incomplete: The upstream "fake" closed its stream before [DONE]; the answer is incomplete.`}, 1},
		{"no finish_reason", []string{roleChunk, content("Hel"), usageChunk, doneFrame},
			[]string{`{"role":"assistant","content":""}`, `{"content":"Hel"}`,
				`error upstream_incomplete: The upstream "fake" ended its stream without a finish reason; the answer is incomplete.`}, 1},
		{"empty stream", nil,
			[]string{`error upstream_incomplete: The upstream "fake" closed its stream before [DONE] (gave up after 3 attempts in …).`}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, answer(tt.frames...))
			n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
			got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
			equal(t, seen(t, got), tt.want)
			if f.requests() != tt.requests {
				t.Fatalf("the upstream got %d requests, want %d", f.requests(), tt.requests)
			}
		})
	}
}

// refuse answers with status and an OpenAI error object.
func refuse(w http.ResponseWriter, status int, msg string, header ...string) {
	for i := 0; i+1 < len(header); i += 2 {
		w.Header().Set(header[i], header[i+1])
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": "error"}})
	w.Write(b)
}

func TestUpstream429HonoursRetryAfterThenStreams(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			refuse(w, http.StatusTooManyRequests, "slow down", "Retry-After", "1")
			return
		}
		answer(goodAnswer...)(n, w, r)
	})
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), goodSeen)
	if f.requests() != 2 {
		t.Fatalf("the upstream got %d requests, want 2", f.requests())
	}
	if gap := f.times[1].Sub(f.times[0]); gap < time.Second {
		t.Fatalf("retried after %v, before the upstream's Retry-After of 1s", gap)
	}
}

func TestUpstream429BeyondTheBudgetIsPassedOnAtOnce(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		refuse(w, http.StatusTooManyRequests, "quota exceeded", "Retry-After", "120")
	})
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{RetryBudget: 5 * time.Second}))
	resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi", "stream", false))
	var body struct {
		Error struct{ Message, Type, Code string }
	}
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusTooManyRequests || body.Error.Code != "upstream_rate_limited" ||
		body.Error.Message != `The upstream "fake" is rate limiting Sluice: quota exceeded` {
		t.Fatalf("got %s %+v", resp.Status, body.Error)
	}
	if f.requests() != 1 {
		t.Fatalf("the upstream got %d requests, want 1", f.requests())
	}
}

func TestUpstream503IsRetriedThenStreams(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			refuse(w, http.StatusServiceUnavailable, "busy")
			return
		}
		answer(goodAnswer...)(n, w, r)
	})
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), goodSeen)
	if f.requests() != 2 {
		t.Fatalf("the upstream got %d requests, want 2", f.requests())
	}
}

func TestUpstream503ForeverFailsBeforeAnyToken(t *testing.T) {
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		refuse(w, http.StatusServiceUnavailable, "busy")
	})
	n := front(t, upstream(t, f.URL, openai.UpstreamOptions{MaxAttempts: 3}))
	want := `error upstream_unavailable: The upstream "fake" failed with 503 Service Unavailable: busy (gave up after 3 attempts in …).`

	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), []string{want})

	resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi", "stream", false))
	var buf strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&buf)
	if resp.StatusCode != http.StatusBadGateway || describe(t, buf.String()) != want {
		t.Fatalf("non-streaming: %s %s", resp.Status, buf.String())
	}
	if f.requests() != 6 {
		t.Fatalf("the upstream got %d requests, want 3 for each of 2", f.requests())
	}
}

func TestUnreachableUpstreamFallsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused

	backup := newFake(t, answer(goodAnswer...))
	fb := upstream(t, backup.URL, openai.UpstreamOptions{Name: "backup"})
	primary := upstream(t, dead, openai.UpstreamOptions{Name: "primary", MaxAttempts: 2, Fallback: fb})
	alone := upstream(t, dead, openai.UpstreamOptions{Name: "alone", MaxAttempts: 2})
	n := newNode(t, api.Config{}, map[string]sluice.Model{
		"up":    openai.New(openai.Options{Upstream: primary, Model: "m1", FallbackModels: map[string]string{"backup": "m2"}}),
		"alone": openai.New(openai.Options{Upstream: alone, Model: "m1"}),
	})

	got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
	equal(t, seen(t, got), goodSeen)
	if m := string(backup.body(0)["model"]); m != `"m2"` {
		t.Fatalf("the fallback was asked for model %s, want its own name m2", m)
	}

	got = openStream(t, post(t, n.URL+"/v1/chat/completions", chat("alone", "hi"))).rest()
	equal(t, seen(t, got), []string{`error upstream_unreachable: Sluice could not reach the upstream "alone" (gave up after 2 attempts in …).`})
}

func TestUpstreamRefusalsAreClearErrors(t *testing.T) {
	tests := []struct {
		status int
		msg    string
		want   int
		code   string
		shown  string
	}{
		{400, "'temperature' must be at most 2", 400, "upstream_invalid_request",
			`The upstream "fake" refused the request (400 Bad Request): 'temperature' must be at most 2`},
		{422, "messages: field required", 400, "upstream_invalid_request",
			`The upstream "fake" refused the request (422 Unprocessable Entity): messages: field required`},
		{401, "Incorrect API key provided: sk-abc", 502, "upstream_unauthorized",
			`The upstream "fake" refused Sluice's credentials (401 Unauthorized); the operator should check its API key.`},
		{404, "The model `up-model` does not exist", 502, "upstream_not_found",
			"The upstream \"fake\" answered 404 Not Found: The model `up-model` does not exist"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) { refuse(w, tt.status, tt.msg) })
			n := front(t, upstream(t, f.URL, openai.UpstreamOptions{}))
			resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi", "stream", false))
			var body struct {
				Error struct{ Message, Code string }
			}
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.want || body.Error.Code != tt.code || body.Error.Message != tt.shown {
				t.Fatalf("got %s %+v\nwant %d %s %q", resp.Status, body.Error, tt.want, tt.code, tt.shown)
			}
			got := openStream(t, post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))).rest()
			equal(t, seen(t, got), []string{"error " + tt.code + ": " + tt.shown})
			if f.requests() != 2 {
				t.Fatalf("the upstream got %d requests, want 1 for each of 2: refusals are not retried", f.requests())
			}
		})
	}
}

func TestReadersGetHeartbeatsWhileTheUpstreamThinks(t *testing.T) {
	start := make(chan struct{})
	f := newFake(t, func(n int, w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		select {
		case <-start:
		case <-r.Context().Done():
			return
		}
		send(w, goodAnswer...)
	})
	u := upstream(t, f.URL, openai.UpstreamOptions{})
	n := newNode(t, api.Config{Heartbeat: 20 * time.Millisecond}, map[string]sluice.Model{"up": openai.New(openai.Options{Upstream: u, Model: "m"})})
	resp := post(t, n.URL+"/v1/chat/completions", chat("up", "hi"))
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("the stream ended before a heartbeat: %v", err)
		}
		if line == ": ping\n" {
			break
		}
	}
	close(start)
	equal(t, seen(t, (&stream{t: t, resp: resp, rd: sse.NewReader(br)}).rest()), goodSeen)
}
