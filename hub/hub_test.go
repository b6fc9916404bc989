package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/hub"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a hub behind a real loopback HTTP server: GET /{log}?after=ID
// attaches to the log of that name.
type rig struct {
	url   string
	hub   *hub.Hub
	store *memory.Store
	gone  atomic.Int64 // OnGone calls
	// onClose, when set, is every connection's OnClose.
	onClose func()
	// waiting hides the memory log's Notify from the hub, whose pump then
	// waits on the log itself, as it does for a store that cannot notify.
	waiting bool
	// attached, when set, is sent to each time Attach returns.
	attached chan struct{}
	// wrap, when set, is given each log opened and returns what the hub
	// is given.
	wrap func(sluice.Log) sluice.Log
}

// waitingLog is a log without Notify.
type waitingLog struct{ sluice.Log }

func (r *rig) open(ctx context.Context, name string) (sluice.Log, error) {
	l, err := r.store.Open(ctx, name, true, sluice.LogOptions{MaxLen: 100000})
	if err == nil && r.waiting {
		l = waitingLog{l}
	}
	if err == nil && r.wrap != nil {
		l = r.wrap(l)
	}
	return l, err
}

// bothWays runs test with a hub delivering as appends notify it, and
// with one whose pump waits on the log.
func bothWays(t *testing.T, test func(t *testing.T, waiting bool)) {
	t.Run("notified", func(t *testing.T) { test(t, false) })
	t.Run("waiting", func(t *testing.T) { test(t, true) })
}

func newRig(t *testing.T, opts hub.Options) *rig {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &rig{hub: hub.New(opts), store: memory.New(memory.Options{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		l, err := r.open(req.Context(), strings.TrimPrefix(req.URL.Path, "/"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		sse.SetHeaders(w.Header())
		err = r.hub.Attach(w, l, req.URL.Query().Get("after"), hub.AttachOptions{
			Topic: req.URL.Query().Has("topic"), OnGone: func() { r.gone.Add(1) }, OnClose: r.onClose})
		if err != nil {
			http.Error(w, err.Error(), 503)
		}
		if r.attached != nil {
			r.attached <- struct{}{}
		}
	}))
	r.url = srv.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.hub.Drain()
		if err := r.hub.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
		r.store.Close()
	})
	return r
}

func (r *rig) log(t *testing.T, name string) sluice.Log {
	t.Helper()
	l, err := r.open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func appendData(t *testing.T, l sluice.Log, data string, end sluice.End) string {
	t.Helper()
	id, err := l.Append(context.Background(), sluice.Event{Data: []byte(data), End: end})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// dial opens a stream with a raw connection and returns a parser on it,
// after the response head and the retry line.
func (r *rig) dial(t *testing.T, path string) (net.Conn, *sse.Reader, *http.Response) {
	t.Helper()
	return r.dialWith(t, &net.Dialer{}, path)
}

// dialWith is dial with d.
func (r *rig) dialWith(t *testing.T, d *net.Dialer, path string) (net.Conn, *sse.Reader, *http.Response) {
	t.Helper()
	c, err := d.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, sse.NewReader(resp.Body), resp
}

func readN(t *testing.T, rd *sse.Reader, n int) []sse.Event {
	t.Helper()
	out := make([]sse.Event, 0, n)
	for len(out) < n {
		ev, err := rd.Next()
		if err != nil {
			t.Fatalf("after %d events: %v", len(out), err)
		}
		out = append(out, ev)
	}
	return out
}

func TestResponseHeadAndRetry(t *testing.T) {
	r := newRig(t, hub.Options{Retry: 1500 * time.Millisecond})
	c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /t?topic HTTP/1.1\r\nHost: test\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("X-Accel-Buffering") != "no" || resp.Header.Get("Cache-Control") != "no-cache" || !resp.Close {
		t.Fatalf("head: %d %v (close %v)", resp.StatusCode, resp.Header, resp.Close)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	var ms int
	if _, err := fmt.Sscanf(line, "retry: %d\n", &ms); err != nil || ms < 1500 || ms > 2250 {
		t.Fatalf("first body line %q, want retry: 1500 plus up to half again of jitter", line)
	}
}

// TestEveryReaderGetsEveryEventOnce attaches readers at random points of a
// log being written and checks each sees exactly the events after its
// starting point, in order, then the end.
func TestEveryReaderGetsEveryEventOnce(t *testing.T) { bothWays(t, everyReaderGetsEveryEventOnce) }

func everyReaderGetsEveryEventOnce(t *testing.T, waiting bool) {
	r := newRig(t, hub.Options{})
	r.waiting = waiting
	l := r.log(t, "gen/a")
	const total, readers = 400, 40
	ids := make([]string, 0, total)
	var wg sync.WaitGroup
	got := make([][]sse.Event, readers)
	starts := make([]int, readers)
	for i := range total {
		ids = append(ids, appendData(t, l, fmt.Sprintf("e%d", i), sluice.EndNone))
		if k := i / 10; i%10 == 0 && k < readers {
			starts[k] = i + 1
			_, rd, _ := r.dial(t, "/gen/a?after="+ids[i])
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ev, err := rd.Next()
					if err != nil {
						return
					}
					got[k] = append(got[k], ev)
				}
			}()
		}
	}
	appendData(t, l, "end", sluice.EndDone)
	wg.Wait()
	for k, evs := range got {
		start := starts[k]
		if len(evs) != total-start+1 || evs[len(evs)-1].Data != "end" {
			t.Errorf("reader from %d: %d events, want %d and the end", start, len(evs), total-start+1)
			continue
		}
		for j, ev := range evs[:len(evs)-1] {
			if n := start + j; ev.Data != fmt.Sprintf("e%d", n) || ev.ID != ids[n] {
				t.Errorf("reader from %d: event %d is %q (id %s), want e%d (id %s)", start, j, ev.Data, ev.ID, n, ids[n])
				break
			}
		}
	}
}

// TestSlowReaderDoesNotHoldUpOthers fills one client's socket by never
// reading, while others read everything promptly; the hub's memory for the
// slow one stays at one pending batch.
func TestSlowReaderDoesNotHoldUpOthers(t *testing.T) { bothWays(t, slowReaderDoesNotHoldUpOthers) }

func slowReaderDoesNotHoldUpOthers(t *testing.T, waiting bool) {
	obs := &counts{}
	// Long enough that a prompt reader on a loaded machine is never taken
	// for a slow one; the slow one is still cut well within the wait below.
	r := newRig(t, hub.Options{WriteTimeout: 2 * time.Second, Observer: obs})
	r.waiting = waiting
	l := r.log(t, "topic/slow")
	slow, _, _ := r.dial(t, "/topic/slow?topic")
	_ = slow // never read: its socket buffers fill
	_, fast, _ := r.dial(t, "/topic/slow?topic")

	payload := strings.Repeat("x", 8<<10)
	const n = 2000 // 16 MB: far more than the slow client's socket buffers hold
	done := make(chan error, 1)
	go func() {
		for i := range n {
			ev, err := fast.Next()
			if err != nil || len(ev.Data) != len(payload) {
				done <- fmt.Errorf("fast reader, event %d: %v", i, err)
				return
			}
		}
		done <- nil
	}()
	for range n {
		appendData(t, l, payload, sluice.EndNone)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the fast reader was held up")
	}
	// The slow one is dropped by the write timeout, as a client that left.
	deadline := time.Now().Add(10 * time.Second)
	for r.gone.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r.gone.Load() != 1 {
		t.Fatalf("OnGone ran %d times, want 1 (the slow reader)", r.gone.Load())
	}
	// Counted as cut for the write timeout; the fast one got every event.
	if obs.timeouts.Load() != 1 || obs.lagging.Load() != 0 || obs.delivered.Load() < n {
		t.Fatalf("observed %d write-timeout cuts, %d lagging, %d events delivered; want 1, 0 and at least %d",
			obs.timeouts.Load(), obs.lagging.Load(), obs.delivered.Load(), n)
	}
}

// counts is a hub.Observer that counts what it is told.
type counts struct {
	open, delivered, lagging, timeouts atomic.Int64
}

func (c *counts) Opened(bool)     { c.open.Add(1) }
func (c *counts) Closed(bool)     { c.open.Add(-1) }
func (c *counts) Delivered(n int) { c.delivered.Add(int64(n)) }
func (c *counts) CutSlow(reason string) {
	switch reason {
	case hub.CutLagging:
		c.lagging.Add(1)
	case hub.CutWriteTimeout:
		c.timeouts.Add(1)
	}
}

func TestHangUpIsFoundAtOnce(t *testing.T) {
	r := newRig(t, hub.Options{Heartbeat: time.Hour})
	c, _, _ := r.dial(t, "/gen/h")
	if r.hub.Len() != 1 {
		t.Fatalf("hub holds %d connections", r.hub.Len())
	}
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for r.hub.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r.hub.Len() != 0 || r.gone.Load() != 1 {
		t.Fatalf("after the client closed: %d connections, OnGone ran %d times", r.hub.Len(), r.gone.Load())
	}
}

// TestHeartbeatWhileQuiet holds a stream quiet for several write timeouts:
// a reader that reads the heartbeats is kept, however long the quiet lasts.
func TestHeartbeatWhileQuiet(t *testing.T) {
	const heartbeat, timeout = 20 * time.Millisecond, 100 * time.Millisecond
	r := newRig(t, hub.Options{Heartbeat: heartbeat, WriteTimeout: timeout})
	l := r.log(t, "gen/q")
	c, _, resp := r.dial(t, "/gen/q")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a hub that pings no more fails, not hangs
	br := bufio.NewReader(resp.Body)
	start, pings := time.Now(), 0
	for time.Since(start) < 6*timeout {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d pings in %v: %v", pings, time.Since(start), err)
		}
		if line == "\n" || strings.HasPrefix(line, "retry:") {
			continue
		}
		if line != ": ping\n" {
			t.Fatalf("line %q, want a ping", line)
		}
		pings++
	}
	if pings < 10 {
		t.Fatalf("%d pings in %v, want at least 10", pings, 6*timeout)
	}
	appendData(t, l, "last", sluice.EndDone)
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "id: ") {
		t.Fatalf("after the quiet: %q, want the last event", line)
	}
}

func TestDrainEndsTopicsButNotGenerations(t *testing.T) {
	r := newRig(t, hub.Options{})
	l := r.log(t, "gen/d")
	_, topic, _ := r.dial(t, "/topic/t?topic")
	_, gen, _ := r.dial(t, "/gen/d")
	r.hub.Drain()
	if _, err := topic.Next(); err != io.EOF {
		t.Fatalf("topic reader after drain: %v, want EOF", err)
	}

	appendData(t, l, "still", sluice.EndNone)
	appendData(t, l, "[DONE]", sluice.EndDone)
	if evs := readN(t, gen, 2); evs[0].Data != "still" || evs[1].Data != "[DONE]" {
		t.Fatalf("generation reader after drain got %+v", evs)
	}
	if _, err := gen.Next(); err != io.EOF {
		t.Fatalf("after its end: %v, want EOF", err)
	}
}

func TestEndedLogIsReplayedThenClosed(t *testing.T) {
	r := newRig(t, hub.Options{})
	l := r.log(t, "gen/e")
	first := appendData(t, l, "a", sluice.EndNone)
	appendData(t, l, "b", sluice.EndNone)
	appendData(t, l, "[DONE]", sluice.EndDone)
	for _, after := range []string{"", first} {
		_, rd, _ := r.dial(t, "/gen/e?after="+after)
		var got []string
		for {
			ev, err := rd.Next()
			if err != nil {
				break
			}
			got = append(got, ev.Data)
		}
		want := "a b [DONE]"
		if after != "" {
			want = "b [DONE]"
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("after %q: %v, want %s", after, got, want)
		}
	}
}

// TestCallbacksNeverRunInTheAppendingGoroutine ends a log whose reader is
// up to date, so that the appending goroutine itself writes the end and
// closes the connection. OnClose waits for that Append to return, as a
// generation cancelled by its departing reader is waited for: run by the
// appender, it would wait for itself.
func TestCallbacksNeverRunInTheAppendingGoroutine(t *testing.T) {
	r := newRig(t, hub.Options{})
	appended, closed := make(chan struct{}), make(chan struct{})
	r.onClose = func() { <-appended; close(closed) }
	l := r.log(t, "gen/cb")
	_, rd, _ := r.dial(t, "/gen/cb")
	appendData(t, l, "a", sluice.EndNone)
	readN(t, rd, 1) // up to date: the next event is written by Append
	done := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Append did not return: the connection's callbacks ran in its goroutine")
	}
	close(appended)
	<-closed
	if evs := readN(t, rd, 1); evs[0].Data != "[DONE]" {
		t.Fatalf("last event %+v", evs[0])
	}
}

// TestLaggingReaderIsToldToResume feeds a topic faster than one client
// reads: once it cannot take a write at once and then trails by more than
// MaxLag events, it gets a last sluice.resume event, and resuming from its
// last event ID gives it the rest.
func TestLaggingReaderIsToldToResume(t *testing.T) {
	obs := &counts{}
	r := newRig(t, hub.Options{MaxLag: 20, SendBuffer: 4096, Observer: obs})
	l := r.log(t, "topic/lag")
	// A small receive buffer, set before the connection opens (set later,
	// the window already offered stays), so that the flood cannot all sit
	// in the kernel and the reader is really slower than the writer.
	small := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, rd, _ := r.dialWith(t, small, "/topic/lag?topic")
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a reader never cut fails, not hangs
	payload := strings.Repeat("z", 1000)
	// One event read first: the connection is then attached and up to date,
	// so the flood below reaches it live (a connection attached after the
	// flood would catch up with no lag budget, as a new reader should).
	ids := []string{appendData(t, l, payload, sluice.EndNone)}
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	for range 399 {
		ids = append(ids, appendData(t, l, payload, sluice.EndNone))
	}
	var last sse.Event
	var got []sse.Event
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		time.Sleep(time.Millisecond) // a reader slower than the writer
		got = append(got, ev)
		last = ev
	}
	if last.Name != "sluice.resume" || !strings.Contains(last.Data, "slow_reader") {
		t.Fatalf("last event %+v after %d, want sluice.resume", last, len(got))
	}
	resumeFrom := got[len(got)-2].ID
	if last.ID != resumeFrom {
		t.Fatalf("the resume event changed the last event ID to %q", last.ID)
	}
	if r.gone.Load() != 0 {
		t.Fatal("a reader told to resume was treated as gone")
	}
	if obs.lagging.Load() != 1 || obs.timeouts.Load() != 0 || obs.delivered.Load() < int64(len(got)-1) {
		t.Fatalf("observed %d lagging cuts, %d write-timeout cuts, %d events delivered; want 1, 0 and at least %d",
			obs.lagging.Load(), obs.timeouts.Load(), obs.delivered.Load(), len(got)-1)
	}
	for deadline := time.Now().Add(10 * time.Second); obs.open.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open after the cut", obs.open.Load())
		}
	}
	_, rest, _ := r.dial(t, "/topic/lag?topic&after="+resumeFrom)
	n := len(got) // the first event, and all of got but the resume event
	for n < len(ids) {
		ev, err := rest.Next()
		if err != nil || ev.ID != ids[n] {
			t.Fatalf("resumed event %d: %+v %v, want id %s", n, ev, err, ids[n])
		}
		n++
	}
}

func TestDrainSendsARetryDelay(t *testing.T) {
	r := newRig(t, hub.Options{Retry: time.Second})
	_, _, resp := r.dial(t, "/topic/t?topic")
	br := bufio.NewReader(resp.Body)
	br.ReadString('\n') // the first retry: line
	r.hub.Drain()
	rest, _ := io.ReadAll(br)
	var ms int
	if _, err := fmt.Sscanf(string(rest), "retry: %d\n: server shutting down; reconnect\n", &ms); err != nil || ms < 1000 || ms > 1500 {
		t.Fatalf("after drain: %q, want a jittered retry: then the reason", rest)
	}
}

// TestAReaderFromAnotherIncarnationJoinsTheFeed attaches to an empty log
// with an ID that an earlier incarnation of it issued. The reader is told
// that its place is gone, and Attach returns at once: the reader's place,
// before the first event, is spelt otherwise than the feed's head (the
// empty log's ""), and it must join the feed all the same rather than look
// again every millisecond until the first event. Then every event reaches
// it and a reader that was up to date alike.
func TestAReaderFromAnotherIncarnationJoinsTheFeed(t *testing.T) {
	bothWays(t, readerFromAnotherIncarnationJoins)
}

func readerFromAnotherIncarnationJoins(t *testing.T, waiting bool) {
	r := newRig(t, hub.Options{})
	r.waiting = waiting
	r.attached = make(chan struct{}, 2)
	l := r.log(t, "topic/new")
	attached := func() {
		t.Helper()
		select {
		case <-r.attached:
		case <-time.After(5 * time.Second):
			t.Fatal("Attach has not returned after 5s")
		}
	}
	_, old, _ := r.dial(t, "/topic/new?topic&after=42")
	attached()
	if gap := readN(t, old, 1)[0]; gap.Name != sluice.GapEvent || !strings.Contains(gap.Data, `"reason":"replaced"`) {
		t.Fatalf("first event %+v, want a replaced gap", gap)
	}
	_, fresh, _ := r.dial(t, "/topic/new?topic")
	attached()
	var ids []string
	for _, d := range []string{"a", "b", "c"} {
		ids = append(ids, appendData(t, l, d, sluice.EndNone))
	}
	for _, rd := range []*sse.Reader{old, fresh} {
		evs := readN(t, rd, 3)
		for i, ev := range evs {
			if ev.Data != []string{"a", "b", "c"}[i] || ev.ID != ids[i] {
				t.Fatalf("event %d: %+v, want %s under %q", i, ev, []string{"a", "b", "c"}[i], ids[i])
			}
		}
	}
}
