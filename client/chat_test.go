package client_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// Chats read through a proxy that cuts every event stream within its first
// 8 KiB, at any byte, while the answers are still being generated: each
// joined transcript must be the uninterrupted one, event for event.
func TestChatsThroughACuttingProxyMatchTheUninterruptedTranscript(t *testing.T) {
	const chats = 24
	srv := testenv.NewServer(t, testenv.Options{Demo: demo.Options{TokensPerSecond: 2000}, MaxGenerations: chats})
	proxy := testenv.NewCutProxy(t, srv.URL, testenv.CutOptions{Seed: 17})
	c := newClient(t, proxy.URL, fast)
	ctx := testCtx(t)

	type result struct {
		id, text, lastID string
		got              []event
		err              error
	}
	results := make([]result, chats)
	var wg sync.WaitGroup
	for i := range chats {
		wg.Go(func() {
			s, err := c.Chat(ctx, chatRequest(fmt.Sprintf("chat %d, cut at random", i)))
			if err != nil {
				results[i].err = err
				return
			}
			got, text, err := readDeltas(s)
			results[i] = result{s.ID(), text, s.LastEventID(), got, err}
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Errorf("chat %d ended with %v after %d events", i, r.err, len(r.got))
			continue
		}
		want, doneID := whole(t, srv, r.id)
		if d := sameTranscript(r.got, want); d != "" {
			t.Errorf("chat %d: %s", i, d)
		}
		if wantText, _ := testenv.ChatText(t, datas(want)); r.text != wantText {
			t.Errorf("chat %d: the deltas' content is not the answer's text", i)
		}
		if r.lastID != doneID {
			t.Errorf("chat %d: LastEventID %q, want that of [DONE], %q", i, r.lastID, doneID)
		}
	}
	t.Logf("%d chats, %d event streams, %d cut", chats, proxy.Streams(), proxy.Cuts())
	if proxy.Cuts() < chats {
		t.Fatalf("only %d cuts for %d chats: the test did not test resuming", proxy.Cuts(), chats)
	}
}

func datas(evs []event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.data
	}
	return out
}

// A connection that goes silent without closing (a dead network path) is
// given up after the idle timeout, and the stream goes on on another.
func TestAStalledConnectionIsLeftAfterTheIdleTimeout(t *testing.T) {
	srv := testenv.NewServer(t, testenv.Options{})
	proxy := testenv.NewCutProxy(t, srv.URL, testenv.CutOptions{Seed: 3, MaxBytes: 16 << 10, Stall: true})
	retry := fast
	retry.IdleTimeout = 100 * time.Millisecond
	var stalls atomic.Int32
	retry.OnRetry = func(int, time.Duration, error) { stalls.Add(1) }
	c := newClient(t, proxy.URL, retry)

	s, err := c.Chat(testCtx(t), chatRequest("stalled"))
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := readDeltas(s)
	if err != nil {
		t.Fatalf("ended with %v after %d events", err, len(got))
	}
	want, _ := whole(t, srv, s.ID())
	if d := sameTranscript(got, want); d != "" {
		t.Fatal(d)
	}
	if stalls.Load() == 0 || int64(stalls.Load()) != proxy.Cuts() {
		t.Fatalf("%d reconnects for %d stalled connections", stalls.Load(), proxy.Cuts())
	}
}

// A connection that carries heartbeats is kept however long the model
// thinks: here for five idle timeouts.
func TestHeartbeatsKeepAQuietStreamOpen(t *testing.T) {
	step := &testenv.StepModel{Tokens: []string{"late"}, Step: make(chan struct{})}
	srv := testenv.NewServer(t, testenv.Options{API: api.Config{Heartbeat: 20 * time.Millisecond}, Models: map[string]sluice.Model{"step": step}})
	retry := fast
	retry.IdleTimeout = 200 * time.Millisecond
	var reconnects atomic.Int32
	retry.OnRetry = func(_ int, _ time.Duration, reason error) {
		reconnects.Add(1)
		t.Logf("reconnect: %v", reason)
	}
	c := newClient(t, srv.URL, retry)
	req := chatRequest("think long")
	req.Model = "step"
	s, err := c.Chat(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * retry.IdleTimeout) // nothing to wait for: the quiet is the test
	step.Step <- struct{}{}
	_, text, err := readDeltas(s)
	if err != nil || text != "late" {
		t.Fatalf("got %q, %v", text, err)
	}
	if n := reconnects.Load(); n != 0 {
		t.Fatalf("%d reconnects on a stream that sent heartbeats", n)
	}
}

// The server's retry: bounds the wait between reconnects, whatever the
// client's own policy would wait.
func TestReconnectsWaitNoLongerThanTheServersRetry(t *testing.T) {
	const serverRetry = 10 * time.Millisecond
	srv := testenv.NewServer(t, testenv.Options{API: api.Config{Retry: serverRetry}})
	proxy := testenv.NewCutProxy(t, srv.URL, testenv.CutOptions{Seed: 5})
	var mu sync.Mutex
	var delays []time.Duration
	c := newClient(t, proxy.URL, client.RetryPolicy{
		InitialDelay: time.Hour,
		MaxDelay:     time.Hour,
		OnRetry: func(_ int, d time.Duration, _ error) {
			mu.Lock()
			delays = append(delays, d)
			mu.Unlock()
		},
	})
	s, err := c.Chat(testCtx(t), chatRequest("come back soon"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := readDeltas(s); err != nil {
		t.Fatalf("ended with %v after %d events", err, len(got))
	}
	if len(delays) == 0 {
		t.Fatal("the stream was never cut")
	}
	for _, d := range delays {
		// The server spreads its retry: by up to half again.
		if d > serverRetry*3/2 {
			t.Fatalf("waited %v before a reconnect; the server asked for at most %v", d, serverRetry*3/2)
		}
	}
}

func TestAttachReadsFromAnyPoint(t *testing.T) {
	srv := testenv.NewServer(t, testenv.Options{})
	c := newClient(t, srv.URL, fast)
	ctx := testCtx(t)
	s, err := c.Chat(ctx, chatRequest("attach"))
	if err != nil {
		t.Fatal(err)
	}
	all, _, err := readDeltas(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, after := range []int{-1, 0, len(all) / 2} {
		from := ""
		if after >= 0 {
			from = all[after].id
		}
		a, err := c.Attach(ctx, s.ID(), from)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := readDeltas(a)
		if err != nil {
			t.Fatal(err)
		}
		if d := sameTranscript(got, all[after+1:]); d != "" {
			t.Errorf("attached after event %d: %s", after, d)
		}
	}
	// After [DONE] there is nothing more: the server answers 204.
	a, err := c.Attach(ctx, s.ID(), s.LastEventID())
	if err == nil {
		var n int
		for range a.Deltas() {
			n++
		}
		err = a.Close()
		if n != 0 {
			t.Errorf("past the end: %d deltas", n)
		}
	}
	if err != nil {
		t.Errorf("past the end: %v", err)
	}
}

func TestAttachingToAnUnknownStreamIsErrExpiredAtOnce(t *testing.T) {
	srv := testenv.NewServer(t, testenv.Options{})
	retry := fast
	retry.OnRetry = func(int, time.Duration, error) { t.Error("a 404 was retried") }
	c := newClient(t, srv.URL, retry)
	_, err := c.Attach(testCtx(t), "0123456789abcdef0123456789abcdef", "")
	var e *client.Error
	if !errors.Is(err, client.ErrExpired) || !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || e.Code != "not_found" {
		t.Fatalf("got %v", err)
	}
}

// A stream that the server forgets while its reader is away ends with
// ErrExpired: nothing more can come, so it is not retried.
func TestAStreamForgottenWhileAwayEndsWithErrExpired(t *testing.T) {
	srv := testenv.NewServer(t, testenv.Options{Retention: 10 * time.Millisecond})
	// Every event stream is cut right after its head: the first read fails.
	proxy := testenv.NewCutProxy(t, srv.URL, testenv.CutOptions{MaxBytes: 1})
	retry := fast
	var retries atomic.Int32
	var id string
	retry.OnRetry = func(int, time.Duration, error) {
		if retries.Add(1) > 1 {
			return
		}
		testenv.Eventually(t, "the stream to be forgotten", func() bool {
			resp := srv.Get(t, "/v1/streams/"+id)
			resp.Body.Close()
			return resp.StatusCode == http.StatusNotFound
		})
	}
	c := newClient(t, proxy.URL, retry)
	s, err := c.Chat(testCtx(t), chatRequest("forgotten"))
	if err != nil {
		t.Fatal(err)
	}
	id = s.ID()
	got, _, err := readDeltas(s)
	if !errors.Is(err, client.ErrExpired) || len(got) != 0 || retries.Load() != 1 {
		t.Fatalf("got %d deltas, %v, after %d reconnects; want ErrExpired after one", len(got), err, retries.Load())
	}
}

// Stream.Cancel stops the generation, and the range reads on to the
// server's closing event: it ends with ErrCancelled, having read exactly
// what was generated.
func TestCancelEndsTheRangeWithErrCancelled(t *testing.T) {
	step := &testenv.StepModel{Tokens: []string{"one", "two", "three"}, Step: make(chan struct{})}
	srv := testenv.NewServer(t, testenv.Options{Models: map[string]sluice.Model{"step": step}})
	c := newClient(t, srv.URL, fast)
	ctx := testCtx(t)
	req := chatRequest("stop me")
	req.Model = "step"
	s, err := c.Chat(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	step.Step <- struct{}{}
	var text strings.Builder
	var end error
	for d, err := range s.Deltas() {
		if err != nil {
			end = err
			break
		}
		text.WriteString(d.Content)
		if d.Content == "one" {
			if err := s.Cancel(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	var e *client.Error
	if !errors.Is(end, client.ErrCancelled) || !errors.As(end, &e) || e.StatusCode != 0 || text.String() != "one" {
		t.Fatalf("read %q, ended with %v", text.String(), end)
	}
	if step.StoppedBy() == nil {
		t.Fatal("the model was not stopped")
	}
}

// The request that starts a chat is never sent twice: if no answer comes
// back, it may have started one.
func TestAChatRequestThatGetsNoAnswerIsNotSentAgain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conn.Read(make([]byte, 4096)) // the request, then hang up
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	c := newClient(t, "http://"+ln.Addr().String(), fast)
	if _, err := c.Chat(testCtx(t), chatRequest("once")); err == nil {
		t.Fatal("Chat succeeded against a server that hangs up")
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("the request was sent on %d connections", n)
	}
}

// Closing a stream from another goroutine ends its range, without an
// error, and leaves nothing running (TestMain checks for goroutines).
func TestClosingAStreamEndsItsRange(t *testing.T) {
	step := &testenv.StepModel{Tokens: []string{"one", "two"}, Step: make(chan struct{})}
	srv := testenv.NewServer(t, testenv.Options{Models: map[string]sluice.Model{"step": step}})
	c := newClient(t, srv.URL, fast)
	req := chatRequest("close me")
	req.Model = "step"
	s, err := c.Chat(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	step.Step <- struct{}{}
	n := 0
	for d, err := range s.Deltas() {
		if err != nil {
			t.Fatalf("the range ended with %v", err)
		}
		if n++; d.Content == "one" {
			go s.Close() // the range waits for "two", which never comes
		}
	}
	if n != 2 { // the role, then "one"
		t.Fatalf("%d deltas", n)
	}
	// The generation goes on: it can be attached to and finished.
	a, err := c.Attach(testCtx(t), s.ID(), s.LastEventID())
	if err != nil {
		t.Fatal(err)
	}
	step.Step <- struct{}{}
	if _, text, err := readDeltas(a); err != nil || text != "two" {
		t.Fatalf("attached: %q, %v", text, err)
	}
}

func TestErrorsCarrySluicesErrorObject(t *testing.T) {
	keys, err := admit.ParseKeys("app: 0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	srv := testenv.NewServer(t, testenv.Options{Admit: admit.Config{Keys: keys}})
	c := newClient(t, srv.URL, fast)
	ctx := testCtx(t)
	var e *client.Error
	if _, err := c.Models(ctx); !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized || e.Type != "authentication_error" || e.Message == "" {
		t.Fatalf("without a key: %v", err)
	}
	c.APIKey = "0123456789abcdef0123"
	if ms, err := c.Models(ctx); err != nil || len(ms) == 0 || ms[0].ID != "demo" {
		t.Fatalf("models: %v, %v", ms, err)
	}
	req := chatRequest("hi")
	req.Model = "no-such-model"
	if _, err := c.Chat(ctx, req); !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || e.Param != "model" {
		t.Fatalf("unknown model: %v", err)
	}
	if _, err := c.Cancel(ctx, "nope"); !errors.As(err, &e) || e.StatusCode != http.StatusNotFound {
		t.Fatalf("cancel of an unknown stream: %v", err)
	}
}
