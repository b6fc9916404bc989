package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// scrape is one GET /metrics: each sample's value by its name and labels,
// as client_golang writes them (labels sorted by name), and the text.
type scrape struct {
	text    string
	samples map[string]float64
}

func getMetrics(t *testing.T, url string, header ...string) scrape {
	t.Helper()
	resp := testenv.Do(t, http.DefaultClient, http.MethodGet, url, nil, header...)
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %s %s", url, err, resp.Status, b)
	}
	return parseScrape(t, string(b))
}

// parseScrape reads the samples of a scrape in the text format.
func parseScrape(t *testing.T, text string) scrape {
	t.Helper()
	sc := scrape{text: text, samples: make(map[string]float64)}
	for line := range strings.Lines(sc.text) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(strings.TrimSpace(line), ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		sc.samples[line[:i]] = v
	}
	return sc
}

// of returns the value of one sample, 0 when it is absent (a counter
// never incremented).
func (s scrape) of(sample string) float64 { return s.samples[sample] }

// promtool runs `promtool check metrics` on the scrape, Prometheus's own
// linter of names, types, units and help texts. It fails the test when
// promtool is missing: scripts/test.sh installs it (Debian's prometheus
// package), and a metrics test that skipped would pass unchecked.
func promtool(t *testing.T, s scrape) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed, and this test checks the metrics with it: run scripts/test.sh, " +
			"which installs it, or apt-get install prometheus (Debian's package ships promtool)")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(s.text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// sseStream posts a chat or gets a stream and returns its response, which
// must be 200.
func sseRequest(t *testing.T, method, url, body string, header ...string) (*http.Response, *sse.Reader) {
	t.Helper()
	var b any
	if body != "" {
		b = body
	}
	resp := testenv.Do(t, http.DefaultClient, method, url, b, header...)
	if resp.StatusCode != http.StatusOK {
		rest, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, rest)
	}
	return resp, sse.NewReader(bufio.NewReader(resp.Body))
}

func TestMetricsMoveWithAChatACancelARefusalAndAResume(t *testing.T) {
	url, _ := startServe(t, "--demo-tps", "200", "--demo-ttft", "0s", "--max-messages", "2", "--topic-max-len", "2")
	before := getMetrics(t, url+"/metrics")
	promtool(t, before)
	if !strings.Contains(before.text, `goversion="`+runtime.Version()+`"`) {
		t.Fatal("no sluice_build_info with the Go version")
	}

	// A chat, read to its end.
	resp, rd := sseRequest(t, http.MethodPost, url+"/v1/chat/completions",
		`{"model":"demo","stream":true,"messages":[{"role":"user","content":"short"}]}`)
	id := resp.Header.Get("Sluice-Stream-ID")
	var firstID string
	tokens := 0
	for {
		ev, err := rd.Next()
		if err != nil {
			t.Fatalf("the chat's stream: %v", err)
		}
		if firstID == "" {
			firstID = ev.ID
		}
		if strings.Contains(ev.Data, `"content":"`) && !strings.Contains(ev.Data, `"content":""`) {
			tokens++
		}
		if ev.Data == "[DONE]" {
			break
		}
	}

	// A resume of it, after its first event, read to its end.
	resp2, rd2 := sseRequest(t, http.MethodGet, url+"/v1/streams/"+id, "", "Last-Event-ID", firstID)
	for ev, err := rd2.Next(); ev.Data != "[DONE]"; ev, err = rd2.Next() {
		if err != nil {
			t.Fatalf("the resumed stream: %v", err)
		}
	}
	resp2.Body.Close()

	// A resume whose place is gone: a topic that keeps two events, read
	// from the first of four.
	var ids []string
	for i := range 4 {
		r := testenv.Do(t, http.DefaultClient, http.MethodPost, url+"/v1/topics/m/events", `{"data":"e`+strconv.Itoa(i)+`"}`)
		var b struct{ ID string }
		decodeJSON(t, r, &b)
		ids = append(ids, b.ID)
	}
	resp3, rd3 := sseRequest(t, http.MethodGet, url+"/v1/topics/m/events", "", "Last-Event-ID", ids[0])
	if ev, err := rd3.Next(); err != nil || ev.Name != "sluice.gap" {
		t.Fatalf("resumed from a trimmed event: %+v, %v; want a sluice.gap", ev, err)
	}
	resp3.Body.Close()

	// A cancel: a long answer stopped after its first token.
	respC, rdC := sseRequest(t, http.MethodPost, url+"/v1/chat/completions",
		`{"model":"demo","stream":true,"messages":[{"role":"user","content":"long"}]}`)
	for {
		ev, err := rdC.Next()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ev.Data, `"content":"`) && !strings.Contains(ev.Data, `"content":""`) {
			break // its first token (the first event is the role alone)
		}
	}
	cancel := testenv.Do(t, http.DefaultClient, http.MethodPost, url+"/v1/streams/"+respC.Header.Get("Sluice-Stream-ID")+"/cancel", nil)
	if cancel.StatusCode != http.StatusOK {
		t.Fatalf("cancel: %s", cancel.Status)
	}
	for ev, err := rdC.Next(); !strings.Contains(ev.Data, `"code":"cancelled"`); ev, err = rdC.Next() {
		if err != nil {
			t.Fatalf("the cancelled stream ended without its cancellation: %v", err)
		}
	}

	// A refusal: three messages where two are the most.
	refused := testenv.Do(t, http.DefaultClient, http.MethodPost, url+"/v1/chat/completions",
		`{"model":"demo","stream":true,"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"user","content":"c"}]}`)
	if refused.StatusCode != http.StatusBadRequest {
		t.Fatalf("three messages: %s, want 400", refused.Status)
	}

	// The streams' ends reach the metrics as their connections close.
	var after scrape
	testenv.Eventually(t, "every stream closed in the metrics", func() bool {
		after = getMetrics(t, url+"/metrics")
		return after.of(`sluice_streams_open{kind="generation",transport="sse"}`) == 0 &&
			after.of(`sluice_streams_open{kind="topic",transport="sse"}`) == 0
	})
	promtool(t, after)
	moved := func(sample string) float64 { return after.of(sample) - before.of(sample) }
	for _, want := range []struct {
		sample string
		delta  float64
	}{
		{`sluice_generations_started_total{model="demo"}`, 2},
		{`sluice_generations_ended_total{model="demo",reason="done"}`, 1},
		{`sluice_generations_ended_total{model="demo",reason="cancelled"}`, 1},
		{`sluice_generations_running{model="demo"}`, 0},
		{`sluice_generation_time_to_first_token_seconds_count{model="demo"}`, 2},
		{`sluice_resumes_total{gap="false"}`, 1},
		{`sluice_resumes_total{gap="true"}`, 1},
		{`sluice_refusals_total{limit="max-messages",reason="too_many_messages"}`, 1},
		{`sluice_topic_publishes_total`, 4},
		{`sluice_http_requests_total{code="400",route="POST /v1/chat/completions"}`, 1},
		{`sluice_http_requests_total{code="200",route="GET /v1/streams/{id}"}`, 1},
		{`sluice_http_requests_total{code="201",route="POST /v1/topics/{name}/events"}`, 4},
	} {
		if got := moved(want.sample); got != want.delta {
			t.Errorf("%s moved by %v, want %v", want.sample, got, want.delta)
		}
	}
	// The whole chat's tokens, and at least the first of the cancelled one.
	if got := moved(`sluice_generation_tokens_total{model="demo"}`); got < float64(tokens+1) {
		t.Errorf("tokens moved by %v, want at least %d", got, tokens+1)
	}
	if got := moved(`sluice_generation_inter_token_delay_seconds_count{model="demo"}`); got < float64(tokens-1) {
		t.Errorf("inter-token delays counted %v, want at least %d", got, tokens-1)
	}
	// The chat's events twice (read, then resumed after its first), the
	// gap and two topic events, the cancelled chat's.
	if got := moved(`sluice_events_delivered_total{transport="sse"}`); got < float64(2*tokens) {
		t.Errorf("events delivered over the hub moved by %v, want at least %d", got, 2*tokens)
	}
	if after.of(`sluice_store_retained_logs`) < 2 {
		t.Errorf("the store keeps %v ended logs, want the 2 chats", after.of(`sluice_store_retained_logs`))
	}
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsNeedAKeyUnlessOnTheirOwnListener(t *testing.T) {
	const key = "k0123456789abcdefghij"
	url, _ := startServe(t, "--api-keys", key)
	if resp := testenv.Do(t, http.DefaultClient, http.MethodGet, url+"/metrics", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/metrics without a key: %s, want 401", resp.Status)
	}
	getMetrics(t, url+"/metrics", "Authorization", "Bearer "+key)

	// On a listener of their own, no key is asked, and the API's port has
	// no /metrics.
	addr := freeAddr(t)
	url2, _ := startServe(t, "--api-keys", key, "--metrics-addr", addr)
	promtool(t, getMetrics(t, "http://"+addr+"/metrics"))
	if resp := testenv.Do(t, http.DefaultClient, http.MethodGet, url2+"/metrics", nil, "Authorization", "Bearer "+key); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics on the API's port with --metrics-addr: %s, want 404", resp.Status)
	}
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestWithRedisItsRoundTripsAreMeasuredAndReadinessFollowsIt serves from
// a real Redis: a chat's appends and reads show in the Redis metrics,
// which promtool accepts, and /readyz says not ready once Redis is gone,
// while /healthz still says the process lives.
func TestWithRedisItsRoundTripsAreMeasuredAndReadinessFollowsIt(t *testing.T) {
	r := testenv.StartRedis(t)
	url, _ := startServe(t, "--redis-url", r.URL, "--demo-ttft", "0s", "--demo-tps", "0")
	if resp := testenv.Do(t, http.DefaultClient, http.MethodGet, url+"/readyz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz with Redis up: %s", resp.Status)
	}
	resp, rd := sseRequest(t, http.MethodPost, url+"/v1/chat/completions",
		`{"model":"demo","stream":true,"messages":[{"role":"user","content":"short"}]}`)
	for ev, err := rd.Next(); ev.Data != "[DONE]"; ev, err = rd.Next() {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The chat's own reader, on the node that writes its log, asks Redis
	// nothing; a resume of the ended stream asks where it stands (its
	// events come from the node's window).
	_, rd = sseRequest(t, http.MethodGet, url+"/v1/streams/"+resp.Header.Get("Sluice-Stream-Id"), "")
	for ev, err := rd.Next(); ev.Data != "[DONE]"; ev, err = rd.Next() {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := getMetrics(t, url+"/metrics")
	promtool(t, s)
	// At least a round of the tokens and the ending: tokens that come
	// as fast as --demo-tps 0 gives them are coalesced into few rounds.
	if n := s.of(`sluice_redis_command_duration_seconds_count{command="append"}`); n < 2 {
		t.Fatalf("%v appends to Redis measured for a whole chat", n)
	}
	if s.of(`sluice_redis_command_duration_seconds_count{command="read"}`)+s.of(`sluice_redis_command_duration_seconds_count{command="last"}`) < 1 ||
		s.of(`sluice_redis_errors_total{command="append"}`) != 0 {
		t.Fatalf("Redis metrics:\n%s", grepLines(s.text, "sluice_redis"))
	}
	if strings.Contains(s.text, "sluice_store_retained_bytes") {
		t.Fatal("the memory store's figures are served for a Redis store")
	}

	r.Stop()
	resp = testenv.Do(t, http.DefaultClient, http.MethodGet, url+"/readyz", nil)
	var body struct{ Status string }
	decodeJSON(t, resp, &body)
	if resp.StatusCode != http.StatusServiceUnavailable || body.Status != "store_unreachable" {
		t.Fatalf("/readyz with Redis gone: %s %q, want 503 store_unreachable", resp.Status, body.Status)
	}
	if resp := testenv.Do(t, http.DefaultClient, http.MethodGet, url+"/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz with Redis gone: %s; the process is alive", resp.Status)
	}
}

func grepLines(text, substr string) string {
	var out strings.Builder
	for line := range strings.Lines(text) {
		if strings.Contains(line, substr) {
			out.WriteString(line)
		}
	}
	return out.String()
}

// TestConversationMetricsMoveWithAChatInAConversation: a chat that names a
// conversation shows in the conversation metrics (which promtool accepts)
// as the writes it costs: the conversation made, its messages added once,
// the answer written in batches at most once a second and once at its
// end, each write timed; the sweeper's rounds show too.
func TestConversationMetricsMoveWithAChatInAConversation(t *testing.T) {
	url, _ := startServe(t, "--data-dir", t.TempDir(), "--demo-ttft", "0s", "--demo-tps", "100", "--conversation-stale", "1s")
	before := getMetrics(t, url+"/metrics")
	promtool(t, before)
	id := newConversation(t, url)
	start := time.Now()
	resp := chatIn(t, url, id, "tell me about rivers and the sea") // about 250 tokens: 2.5 s
	if last := lastData(t, bufio.NewReader(resp.Body)); last != "[DONE]" {
		t.Fatalf("the chat ended with %q", last)
	}
	streamed := time.Since(start)
	var after scrape
	testenv.Eventually(t, "the answer's end stored", func() bool {
		after = getMetrics(t, url+"/metrics")
		return after.of(`sluice_conversation_answers_recorded_total{status="completed"}`)-before.of(`sluice_conversation_answers_recorded_total{status="completed"}`) == 1
	})
	promtool(t, after)
	moved := func(sample string) float64 { return after.of(sample) - before.of(sample) }
	for _, want := range []struct {
		sample string
		delta  float64
	}{
		{`sluice_conversation_store_writes_total{operation="create_conversation",result="ok"}`, 1},
		{`sluice_conversation_store_writes_total{operation="add_items",result="ok"}`, 1},
		{`sluice_conversation_store_write_duration_seconds_count{operation="add_items"}`, 1},
		{`sluice_conversation_answers_recorded_total{status="not_stored"}`, 0},
		{`sluice_conversation_swept_interrupted_total`, 0},
	} {
		if got := moved(want.sample); got != want.delta {
			t.Errorf("%s moved by %v, want %v", want.sample, got, want.delta)
		}
	}
	// At least one batch while it streamed, and at most one a second.
	batches := moved(`sluice_conversation_recorder_batches_total`)
	if most := streamed.Seconds() + 1; batches < 1 || batches > most {
		t.Errorf("%v batches for an answer that streamed for %v, want 1 to %.0f", batches, streamed, most)
	}
	updates := moved(`sluice_conversation_store_writes_total{operation="update_message",result="ok"}`)
	if updates != batches+1 {
		t.Errorf("%v message updates, want the %v batches and the end", updates, batches)
	}
	if n := moved(`sluice_conversation_store_write_duration_seconds_count{operation="update_message"}`); n != updates {
		t.Errorf("%v message updates timed, want %v", n, updates)
	}
	// A sweep every quarter of --conversation-stale, while the answer streamed.
	if n := moved(`sluice_conversation_sweeps_total{result="ok"}`); n < 2 {
		t.Errorf("%v sweeps in %v with --conversation-stale 1s", n, streamed)
	}
}
