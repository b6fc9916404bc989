package ws_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/redis"
)

// TestTwoNodesOnRedisServeEachOthersStreams runs /ws on two nodes that
// share a Redis, whose logs do not notify (a feed then waits on the log in
// a pump): a generation started on one node is resumed on the other from
// the middle, and a topic published on one reaches subscribers on both,
// with the same IDs.
func TestTwoNodesOnRedisServeEachOthersStreams(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := redis.New(ctx, redis.Options{URL: r.URL, Prefix: "wsnodes"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	a := newEnv(t, envOptions{store: store, demo: fast.demo})
	b := newEnv(t, envOptions{store: store, demo: fast.demo})

	ca := a.dial(t)
	ca.send(map[string]any{"type": "chat.start", "body": chatBody("across nodes")})
	id := ca.expect("started").Stream
	whole := ca.untilEnd(id)
	want, last := text(t, datas(whole))
	if last != "[DONE]" {
		t.Fatalf("ended with %q", last)
	}
	cb := b.dial(t)
	cut := len(whole) / 2
	cb.send(map[string]any{"type": "stream.attach", "stream": id, "last_event_id": whole[cut-1].ID})
	cb.expect("subscribed")
	rest := cb.untilEnd(id)
	if got, _ := text(t, datas(append(whole[:cut:cut], rest...))); got != want || len(rest) != len(whole)-cut {
		t.Fatalf("resumed on the other node: %d events, text %q; want %d, %q", len(rest), got, len(whole)-cut, want)
	}

	subs := []*client{a.dial(t), a.dial(t), b.dial(t)}
	for _, c := range subs {
		c.send(map[string]any{"type": "topic.subscribe", "topic": "shared"})
		c.expect("subscribed")
	}
	pub := b.dial(t)
	for _, data := range []string{"one", "two", "three"} {
		pub.send(map[string]any{"type": "topic.publish", "topic": "shared", "data": data})
		p := pub.expect("published")
		for i, c := range subs {
			if f := c.expect("event"); f.ID != p.EventID || f.Data != data {
				t.Fatalf("subscriber %d got %+v, want %s %q", i, f, p.EventID, data)
			}
		}
	}
}

// TestSubscribersGetAnErrorWhenTheStoreGoesAway stops Redis under topic
// subscribers that are up to date: each gets an error frame for its
// subscription, as an SSE reader gets an error event, rather than waiting
// on a feed that can no longer read its log; its connection stays open.
func TestSubscribersGetAnErrorWhenTheStoreGoesAway(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	store, err := redis.New(ctx, redis.Options{URL: r.URL, Prefix: "wslost"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := newEnv(t, envOptions{store: store, demo: fast.demo})
	subs := []*client{e.dial(t), e.dial(t)}
	for _, c := range subs {
		c.send(map[string]any{"type": "topic.subscribe", "topic": "lost"})
		c.expect("subscribed")
	}
	pub := e.dial(t)
	pub.send(map[string]any{"type": "topic.publish", "topic": "lost", "data": "before"})
	pub.expect("published")
	for _, c := range subs {
		c.expect("event") // caught up: the feed delivers to it
	}
	r.Stop()
	for i, c := range subs {
		f := c.expect("error")
		if f.Topic != "lost" || f.Error == nil || f.Error.Message == "" {
			t.Fatalf("subscriber %d: error frame %+v; want one for topic lost, with an error object", i, f)
		}
	}
	// The connection is still served: a message is answered.
	subs[0].send(map[string]any{"type": "unsubscribe", "id": "u", "topic": "lost"})
	if f := subs[0].next(); f.ID != "u" {
		t.Fatalf("after the error, unsubscribe was answered with %+v", f)
	}
}

// TestAnAttachAheadOfRedisLooksAtABoundedPace is the /ws side of
// api/TestAReaderAheadOfRedisLooksAtABoundedPace: a subscription attached
// on node B after an ID that A's writer may have handed its own readers
// before Redis stored it waits for it, and meanwhile B's flusher looks at
// Redis a few dozen times a second (fanout.Backoff), not a thousand.
func TestAnAttachAheadOfRedisLooksAtABoundedPace(t *testing.T) {
	r := testenv.StartRedis(t)
	node := func() *env {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		store, err := redis.New(ctx, redis.Options{URL: r.URL, Prefix: "wsahead"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return newEnv(t, envOptions{store: store, demo: demo.Options{TimeToFirstToken: -1, TokensPerSecond: 5}})
	}
	a, b := node(), node() // a store each: two nodes, each its own leases

	ca := a.dial(t)
	ca.send(map[string]any{"type": "chat.start", "body": chatBody("a long story")})
	id := ca.expect("started").Stream
	first := ca.expect("event")
	t.Cleanup(func() { ca.send(map[string]any{"type": "stream.cancel", "stream": id}) })
	const ahead = 5 // a second of tokens at 5 a second
	after := testenv.LaterID(t, first.ID, ahead)

	before, start := r.Calls(t), time.Now()
	cb := b.dial(t)
	cb.send(map[string]any{"type": "stream.attach", "stream": id, "last_event_id": after})
	cb.expect("subscribed")
	if f, want := cb.expect("event"), testenv.LaterID(t, first.ID, ahead+1); f.ID != want {
		t.Fatalf("b's first event after %s: %q, want %s", after, f.ID, want)
	}
	waited := time.Since(start)
	spent := r.Calls(t) - before
	// As over SSE: about 200 commands a second in all with the backoff,
	// where a millisecond's wait came to 1,800.
	if rate := float64(spent) / waited.Seconds(); rate > 600 {
		t.Fatalf("Redis ran %d commands in the %v b's subscription waited: %.0f a second", spent, waited.Round(time.Millisecond), rate)
	}
	t.Logf("Redis ran %d commands in the %v b's subscription waited", spent, waited.Round(time.Millisecond))
}
