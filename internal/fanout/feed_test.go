package fanout_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/redis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// delivery is what one Deliver call was given.
type delivery struct {
	frame         string
	at            *byte // where the frame's bytes were: one encoding is one place
	n             int
	id            string
	ended, inline bool
}

// reader is a fanout.Sub that keeps what it is delivered.
type reader struct{ got chan delivery }

func newReader() *reader { return &reader{got: make(chan delivery, 64)} }

func (r *reader) Deliver(frame []byte, n int, id string, ended, inline bool) {
	r.got <- delivery{string(frame), unsafe.SliceData(frame), n, id, ended, inline}
}

func (r *reader) next(t *testing.T) delivery {
	t.Helper()
	select {
	case d := <-r.got:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
		return delivery{}
	}
}

// lines is a Transport whose wire form is "id data\n", and which keeps
// what Failed is told.
type lines struct {
	failed chan []*reader
	err    error
}

func (*lines) AppendEvent(b *fanout.Batch, ev *sluice.Event) {
	b.Frame = append(append(append(append(b.Frame, ev.ID...), ' '), ev.Data...), '\n')
}

func (l *lines) Failed(current []*reader, err error) {
	l.err = err
	l.failed <- current
}

// rig is a feed on a log, with the WaitGroup its pump counts in.
type rig struct {
	feed fanout.Feed[*reader]
	tr   lines
	wg   sync.WaitGroup
	cfg  fanout.Config
	log  sluice.Log
}

func start(t *testing.T, l sluice.Log) *rig {
	t.Helper()
	r := &rig{log: l, tr: lines{failed: make(chan []*reader, 1)}}
	r.cfg = fanout.Config{WG: &r.wg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Name: "test"}
	r.feed.Start(l, &r.tr, &r.cfg)
	t.Cleanup(func() {
		r.feed.Stop()
		r.wg.Wait()
	})
	return r
}

func memoryLog(t *testing.T) sluice.Log {
	t.Helper()
	store := memory.New(memory.Options{})
	t.Cleanup(func() { store.Close() })
	l, err := store.Create(context.Background(), "gen/test", sluice.LogOptions{MaxLen: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// join joins n new readers at the feed's head.
func (r *rig) join(t *testing.T, n int) []*reader {
	t.Helper()
	head, _, err := r.log.Last(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rs := make([]*reader, n)
	for i := range rs {
		rs[i] = newReader()
		if joined, _, err := r.feed.Join(rs[i], head); !joined || err != nil {
			t.Fatalf("reader %d at the head %q did not join: %v", i, head, err)
		}
	}
	return rs
}

func appendEvent(t *testing.T, l sluice.Log, ev sluice.Event) string {
	t.Helper()
	id, err := l.Append(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestEveryCurrentReaderIsWrittenTheSameEncoding appends to a log that
// three readers follow: each is delivered the one encoding of the batch
// (the same bytes, in the same place), with its count and ID, and the
// ending event ends each of them, after which the feed takes no one.
func TestEveryCurrentReaderIsWrittenTheSameEncoding(t *testing.T) {
	r := start(t, memoryLog(t))
	rs := r.join(t, 3)
	id := appendEvent(t, r.log, sluice.Event{Data: []byte("a")})
	var first delivery
	for i, rd := range rs {
		d := rd.next(t)
		if d.frame != id+" a\n" || d.n != 1 || d.id != id || d.ended {
			t.Fatalf("reader %d was delivered %+v", i, d)
		}
		if i == 0 {
			first = d
		} else if d.at != first.at {
			t.Fatalf("reader %d was written another encoding of the batch than reader 0", i)
		}
	}
	end := appendEvent(t, r.log, sluice.Event{Data: []byte("z"), End: sluice.EndDone})
	for i, rd := range rs {
		if d := rd.next(t); d.id != end || !d.ended {
			t.Fatalf("reader %d: the ending event was delivered as %+v", i, d)
		}
	}
	if joined, head, err := r.feed.Join(newReader(), end); joined || head != end || err != nil {
		t.Fatalf("an ended feed took a reader (joined %v, head %q, err %v)", joined, head, err)
	}
}

// TestAFewReadersAreWrittenByTheAppender checks who delivers, at the edge:
// with four current readers the appending goroutine writes to them before
// Append returns; with five, the feed's pump does.
func TestAFewReadersAreWrittenByTheAppender(t *testing.T) {
	for _, tc := range []struct {
		readers int
		inline  bool
	}{{4, true}, {5, false}} {
		r := start(t, memoryLog(t))
		rs := r.join(t, tc.readers)
		appendEvent(t, r.log, sluice.Event{Data: []byte("a")})
		if tc.inline {
			for i, rd := range rs {
				if len(rd.got) != 1 {
					t.Fatalf("%d readers: reader %d was not written before Append returned", tc.readers, i)
				}
			}
		}
		for i, rd := range rs {
			if d := rd.next(t); d.inline != tc.inline {
				t.Fatalf("%d readers: reader %d was delivered inline=%v, want %v", tc.readers, i, d.inline, tc.inline)
			}
		}
	}
}

// TestOnlyAReaderAtTheHeadJoins checks Join and Leave: a reader behind the
// head is told the head instead, and one that has left is written no more.
func TestOnlyAReaderAtTheHeadJoins(t *testing.T) {
	r := start(t, memoryLog(t))
	before := appendEvent(t, r.log, sluice.Event{Data: []byte("a")})
	head := appendEvent(t, r.log, sluice.Event{Data: []byte("b")})
	if joined, got, err := r.feed.Join(newReader(), before); joined || got != head || err != nil {
		t.Fatalf("a reader behind the head: joined %v, head %q (want %q), err %v", joined, got, head, err)
	}
	rs := r.join(t, 2)
	r.feed.Leave(rs[1])
	id := appendEvent(t, r.log, sluice.Event{Data: []byte("c")})
	// Two readers or fewer are written before Append returns.
	if d := rs[0].next(t); d.id != id {
		t.Fatalf("the reader that stayed got %+v", d)
	}
	if len(rs[1].got) != 0 {
		t.Fatal("the reader that left was written")
	}
}

// quietLog is a log that does not notify, as a shared store's logs do not.
type quietLog struct{ sluice.Log }

// TestAFeedWaitsOnALogThatDoesNotNotify: its pump reads the log when it
// grows and delivers to the current readers.
func TestAFeedWaitsOnALogThatDoesNotNotify(t *testing.T) {
	r := start(t, quietLog{memoryLog(t)})
	rs := r.join(t, 1)
	for _, data := range []string{"a", "b"} {
		id := appendEvent(t, r.log, sluice.Event{Data: []byte(data)})
		if d := rs[0].next(t); d.id != id || d.frame != id+" "+data+"\n" || d.inline {
			t.Fatalf("after appending %q: delivered %+v", data, d)
		}
	}
}

// TestALogThatCannotBeReadIsReportedWithItsReaders stops Redis under a
// feed: its transport is told so once, with the readers that were
// current, and a reader that comes later is refused with the error.
func TestALogThatCannotBeReadIsReportedWithItsReaders(t *testing.T) {
	srv := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := redis.New(ctx, redis.Options{URL: srv.URL, Prefix: "fanout"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	l, err := store.Create(ctx, "gen/lost", sluice.LogOptions{MaxLen: 100})
	if err != nil {
		t.Fatal(err)
	}
	appendEvent(t, l, sluice.Event{Data: []byte("a")})
	r := start(t, l)
	rs := r.join(t, 2)
	srv.Stop()
	var current []*reader
	select {
	case current = <-r.tr.failed:
	case <-time.After(10 * time.Second):
		t.Fatal("the feed did not report its log within 10s of the store going away")
	}
	if len(current) != 2 || r.tr.err == nil {
		t.Fatalf("Failed was told %d readers and err %v; want the 2 current ones and an error", len(current), r.tr.err)
	}
	for _, rd := range rs {
		if current[0] != rd && current[1] != rd {
			t.Fatal("Failed was not told of a current reader")
		}
	}
	if joined, _, err := r.feed.Join(newReader(), ""); joined || err == nil {
		t.Fatalf("a failed feed: joined %v, err %v; want refused with the error", joined, err)
	}
}
