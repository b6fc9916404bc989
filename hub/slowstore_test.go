package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/hub"
	"github.com/sluice-dev/sluice/sse"
)

// slowLast is a log whose Last blocks until release is closed, as a store
// call to a slow or distant store does; entered is closed when it first
// blocks.
type slowLast struct {
	sluice.Log
	entered, release chan struct{}
}

func (l slowLast) Last(ctx context.Context) (string, sluice.End, error) {
	select {
	case <-l.entered:
	default:
		close(l.entered)
	}
	select {
	case <-l.release:
	case <-ctx.Done():
	}
	return l.Log.Last(ctx)
}

// TestASlowLogHoldsUpNoOtherLogsReaders attaches a reader to a log whose
// store takes long to say where it stands (Last blocks), then one to
// another log: the second gets its events while the first still waits,
// as a burst of new streams must not queue behind one slow store call;
// once the first log's store answers, its reader gets its events too.
func TestASlowLogHoldsUpNoOtherLogsReaders(t *testing.T) {
	bothWays(t, aSlowLogHoldsUpNoOtherLogsReaders)
}

func aSlowLogHoldsUpNoOtherLogsReaders(t *testing.T, waiting bool) {
	r := newRig(t, hub.Options{})
	r.waiting = waiting
	slow := slowLast{entered: make(chan struct{}), release: make(chan struct{})}
	released := false
	defer func() {
		if !released {
			close(slow.release) // so that the hub can shut down
		}
	}()
	r.wrap = func(l sluice.Log) sluice.Log {
		if l.Name() == "gen/slow" {
			slow.Log = l
			return slow
		}
		return l
	}
	slowLog, fastLog := r.log(t, "gen/slow"), r.log(t, "gen/fast")
	_, slowRd, _ := r.dial(t, "/gen/slow")
	select {
	case <-slow.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow log's Last was not called within 10s of attaching")
	}

	// Everything of the other log's stream within 10s: its response head,
	// then its event.
	c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /gen/fast HTTP/1.1\r\nHost: test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("the other log's response head, while the slow log's Last was blocked: %v", err)
	}
	id := appendData(t, fastLog, "f", sluice.EndDone)
	ev, err := sse.NewReader(resp.Body).Next()
	if err != nil || ev.ID != id || ev.Data != "f" {
		t.Fatalf("the other log's reader, while the slow log's Last was blocked: %+v, %v; want event %q", ev, err, id)
	}

	close(slow.release)
	released = true
	id = appendData(t, slowLog, "s", sluice.EndDone)
	if ev := readN(t, slowRd, 1)[0]; ev.ID != id || ev.Data != "s" {
		t.Fatalf("the slow log's reader got %+v, want event %q", ev, id)
	}
}
