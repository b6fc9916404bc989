package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// info returns a field of Redis's INFO as a number (calls=N for a
// command's stats), -1 when absent.
func info(t *testing.T, s *Store, section, field string) int64 {
	t.Helper()
	out, err := s.client.Do(context.Background(), s.client.B().Info().Section(section).Build()).ToString()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(field) + `:(?:calls=)?(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// subscribers returns how many connections are subscribed to l's channel.
func subscribers(t *testing.T, s *Store, l sluice.Log) int64 {
	t.Helper()
	ch := l.(*Log).channel
	res, err := s.client.Do(context.Background(), s.client.B().PubsubShardnumsub().Channel(ch).Build()).ToArray()
	if err != nil || len(res) != 2 {
		t.Fatalf("pubsub shardnumsub: %v", err)
	}
	n, _ := res[1].AsInt64()
	return n
}

func readToEnd(ctx context.Context, l sluice.Log) ([]string, error) {
	var ids []string
	after := ""
	buf := make([]sluice.Event, 0, 8)
	for {
		evs, err := l.Read(ctx, after, buf)
		for _, ev := range evs {
			ids = append(ids, ev.ID)
			after = ev.ID
		}
		if errors.Is(err, io.EOF) {
			return ids, nil
		}
		if err != nil {
			return ids, err
		}
	}
}

func TestANodeSubscribesOncePerLogHoweverManyReadersWait(t *testing.T) {
	const perNode, events = 30, 100
	r := testenv.StartRedis(t)
	opts := Options{Prefix: "shared", Linger: 100 * time.Millisecond}
	nodes := []*Store{newStore(t, r.URL, opts), newStore(t, r.URL, opts)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := nodes[0].Create(ctx, "gen/fan", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conns := info(t, nodes[0], "clients", "connected_clients")

	var wg sync.WaitGroup
	got := make([][]string, 2*perNode)
	errs := make([]error, 2*perNode)
	for i := range 2 * perNode {
		h, err := nodes[i%2].Open(ctx, "gen/fan", false, sluice.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { got[i], errs[i] = readToEnd(ctx, h) })
	}
	testenv.Eventually(t, "both nodes subscribed", func() bool { return subscribers(t, nodes[0], l) == 2 })
	// The client opens a few pipelines to a server as commands of other
	// slots come (a handful); a connection per reader
	// would add 60.
	if n := info(t, nodes[0], "clients", "connected_clients"); n-conns > 8 {
		t.Fatalf("%d readers waiting took the nodes' connections from %d to %d; want none of their own", 2*perNode, conns, n)
	}

	if err := nodes[0].client.Do(ctx, nodes[0].client.B().ConfigResetstat().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range events {
		id, err := l.Append(ctx, sluice.Event{Data: fmt.Appendf(nil, "token %d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	id, err := l.Append(ctx, sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, id)
	wg.Wait()
	for i := range got {
		if errs[i] != nil || fmt.Sprint(got[i]) != fmt.Sprint(ids) {
			t.Fatalf("reader %d: %d events, %v; want all %d in order", i, len(got[i]), errs[i], len(ids))
		}
	}
	// Each event went to each node once; its readers took it from there,
	// not each from Redis. (A reader may still look in Redis now and then,
	// when it wakes between an append and its message; a loose bound.)
	scripts := info(t, nodes[0], "commandstats", "cmdstat_evalsha")
	if limit := int64(events + 1 + 2*perNode*5); scripts > limit {
		t.Fatalf("%d events to %d readers on 2 nodes ran %d scripts in Redis; want at most %d", events+1, 2*perNode, scripts, limit)
	}
	t.Logf("%d events to %d readers on 2 nodes: %d scripts run in Redis", events+1, 2*perNode, scripts)

	testenv.Eventually(t, "the nodes to unsubscribe after the linger time", func() bool { return subscribers(t, nodes[0], l) == 0 })
}

func TestAWaitingReaderHearsWhenRedisGoesAway(t *testing.T) {
	r := testenv.StartRedis(t)
	s := newStore(t, r.URL, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.Create(ctx, "gen/lost", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Read(ctx, "", make([]sluice.Event, 0, 4))
		done <- err
	}()
	testenv.Eventually(t, "the reader to subscribe", func() bool { return subscribers(t, s, l) == 1 })
	r.Stop()
	err = <-done
	if sluice.ErrorCode(err) != sluice.EUNAVAILABLE || errors.Is(err, io.EOF) || ctx.Err() != nil {
		t.Fatalf("the waiting reader got %v; want EUNAVAILABLE at once, not the log's end", err)
	}
	_, err = l.Append(ctx, sluice.Event{Data: []byte("x")})
	if sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("append with Redis gone: %v, want EUNAVAILABLE", err)
	}
}

// commandCount counts the store's round trips of one kind.
type commandCount struct {
	name string
	n    atomic.Int64
}

func (c *commandCount) Command(name string, _ time.Duration, _ error) {
	if name == c.name {
		c.n.Add(1)
	}
}

// TestANodesOwnAppendsAreInItsWindowBeforeTheirMessage: once a reader of
// this node has followed a log (its subscription lingers after), each
// event this node appends, at once or deferred in a round, is in the
// node's window when the append returns, or Flush of a deferred one
// (its message comes on another connection, later), so that a poll right
// after it is served without a read from Redis; the messages that follow
// are skipped rather than start the window again.
func TestANodesOwnAppendsAreInItsWindowBeforeTheirMessage(t *testing.T) {
	const events = 40
	reads := &commandCount{name: "read"}
	s := newStore(t, testenv.StartRedis(t).URL, Options{Observer: reads, Coalesce: time.Nanosecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := s.Create(ctx, "gen/own", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, err := l.Append(ctx, sluice.Event{Data: []byte("first")})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]sluice.Event, 0, 4)
	if evs, err := l.Read(ctx, "", buf); err != nil || len(evs) != 1 {
		t.Fatalf("the first read: %v, %v", evs, err)
	}
	before := reads.n.Load()
	for i := range events {
		data := fmt.Appendf(nil, "event %d", i)
		var id string
		if i%2 == 0 {
			if id, err = l.Append(ctx, sluice.Event{Data: data}); err != nil {
				t.Fatal(err)
			}
		} else {
			// Deferred, within the quiet spell: it goes in a round.
			if err := l.(*Log).Defer(ctx, sluice.Event{Data: data}); err != nil {
				t.Fatal(err)
			}
			if err := l.(*Log).Flush(ctx); err != nil {
				t.Fatal(err)
			}
			id = formatID(uint64(i+2), l.(*Log).epoch)
		}
		evs, err := l.Poll(ctx, after, buf)
		if err != nil || len(evs) != 1 || evs[0].ID != id || string(evs[0].Data) != string(data) {
			t.Fatalf("poll after appending %s: %v, %v; want that one event", id, evs, err)
		}
		after = id
	}
	if n := reads.n.Load() - before; n != 0 {
		t.Fatalf("polls right after this node's own appends read Redis %d times; want none: the events are in its window", n)
	}
	// The messages have come meanwhile, and left the window whole.
	evs, err := l.Poll(ctx, formatID(1, l.(*Log).epoch), make([]sluice.Event, 0, events+1))
	if err != nil || len(evs) != events || reads.n.Load() != before {
		t.Fatalf("a poll of all %d from the window: %d events, %v, %d reads of Redis", events, len(evs), err, reads.n.Load()-before)
	}
}
