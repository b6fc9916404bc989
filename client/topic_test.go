package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// readTopic reads s until it has read the event last, and returns what it
// read.
func readTopic(s *client.Subscription, last string) ([]event, error) {
	var got []event
	for ev, err := range s.Events() {
		if err != nil {
			return got, err
		}
		got = append(got, event{ev.ID, ev.Data})
		if ev.ID == last {
			return got, nil
		}
	}
	return got, errors.New("the subscription ended")
}

// Subscribers read a topic through a proxy that cuts every event stream
// within its first 2 KiB, while it is being published to: some replay it
// from the start, some follow it from before its first event. Each must
// read every event once, in order, as an uninterrupted reader does.
func TestSubscribersThroughACuttingProxyGetEveryEventOnce(t *testing.T) {
	const subscribers, published = 12, 300
	srv := testenv.NewServer(t, testenv.Options{})
	proxy := testenv.NewCutProxy(t, srv.URL, testenv.CutOptions{Seed: 29, MaxBytes: 2048})
	c := newClient(t, proxy.URL, fast)
	direct := newClient(t, srv.URL, fast)
	ctx := testCtx(t)

	subs := make([]*client.Subscription, subscribers)
	for i := range subs {
		// The odd ones subscribe to new events only, before any is published.
		s, err := c.Subscribe(ctx, "chaos", client.SubscribeOptions{FromStart: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			data := map[string]any{"n": i, "text": fmt.Sprintf("event %d, with ünïcode to cut inside", i)}
			if _, err := direct.Publish(ctx, "chaos", "", data); err != nil {
				t.Error(err)
				return
			}
		}
	}
	// A third is published before the readers start, the rest while they
	// read, so that resumes land on events both kept and new.
	publish(0, published/3)
	results := make([][]event, subscribers)
	errs := make([]error, subscribers)
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() {
			defer s.Close()
			for ev, err := range s.Events() {
				if err != nil {
					errs[i] = err
					return
				}
				results[i] = append(results[i], event{ev.ID, ev.Data})
				if len(results[i]) == published {
					return
				}
			}
		})
	}
	publish(published/3, published)
	wg.Wait()

	resp := srv.Get(t, "/v1/topics/chaos/events?from=start")
	want := events(testenv.Events(t, resp, published))
	resp.Body.Close()
	for i, got := range results {
		if errs[i] != nil {
			t.Errorf("subscriber %d ended with %v after %d events", i, errs[i], len(got))
			continue
		}
		if d := sameTranscript(got, want); d != "" {
			t.Errorf("subscriber %d: %s", i, d)
		}
	}
	t.Logf("%d subscribers, %d event streams, %d cut", subscribers, proxy.Streams(), proxy.Cuts())
	if proxy.Cuts() < subscribers {
		t.Fatalf("only %d cuts for %d subscribers: the test did not test resuming", proxy.Cuts(), subscribers)
	}
}

// A subscription to new events that loses its connection before the first
// event resumes where the server started it, so it misses nothing
// published while it was away (Sluice-Last-Event-ID).
func TestASubscriptionCutBeforeItsFirstEventMissesNothing(t *testing.T) {
	srv := testenv.NewServer(t, testenv.Options{})
	proxy := testenv.NewCutProxy(t, srv.URL, testenv.CutOptions{Spare: 1})
	c := newClient(t, proxy.URL, fast)
	ctx := testCtx(t)
	before, err := c.Publish(ctx, "news", "", "old")
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"news", "empty-until-now"} {
		s, err := c.Subscribe(ctx, topic, client.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		proxy.CutAll() // before anything was read
		a, _ := c.Publish(ctx, topic, "", "while away")
		b, _ := c.Publish(ctx, topic, "named", map[string]int{"n": 2})
		got, err := readTopic(s, b)
		s.Close()
		want := []event{{a, "while away"}, {b, `{"n":2}`}}
		if err != nil || sameTranscript(got, want) != "" {
			t.Errorf("%s: got %+v, %v; want %+v", topic, got, err, want)
		}
	}
	if before == "" {
		t.Fatal("no ID for a published event")
	}
}

func TestSubscribeFromAnEventOrAnotherIncarnation(t *testing.T) {
	srv := testenv.NewServer(t, testenv.Options{})
	c := newClient(t, srv.URL, fast)
	ctx := testCtx(t)
	var ids []string
	for i := range 3 {
		id, err := c.Publish(ctx, "log", "", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	s, err := c.Subscribe(ctx, "log", client.SubscribeOptions{LastEventID: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readTopic(s, ids[2])
	if err != nil || sameTranscript(got, []event{{ids[1], "1"}, {ids[2], "2"}}) != "" {
		t.Fatalf("after %s: %+v, %v", ids[0], got, err)
	}
	if s.LastEventID() != ids[2] {
		t.Fatalf("LastEventID %q, want %q", s.LastEventID(), ids[2])
	}

	// An ID of an earlier incarnation (here: round 1's plain numbers) gets a
	// gap event, then everything the topic keeps.
	s, err = c.Subscribe(ctx, "log", client.SubscribeOptions{LastEventID: "2"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next, stop := iterPull(s)
	defer stop()
	ev, err := next()
	if g, ok := ev.Gap(); err != nil || !ok || g.Reason != "replaced" || g.Message == "" {
		t.Fatalf("first event %+v, %v: want a replaced gap", ev, err)
	}
	for i := range 3 {
		if ev, err := next(); err != nil || ev.ID != ids[i] {
			t.Fatalf("after the gap: %+v, %v; want %s", ev, err, ids[i])
		}
	}
}

// iterPull reads a subscription one event at a time.
func iterPull(s *client.Subscription) (next func() (client.Event, error), stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct {
		ev  client.Event
		err error
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range s.Events() {
			select {
			case ch <- struct {
				ev  client.Event
				err error
			}{ev, err}:
			case <-ctx.Done():
				return
			}
		}
	}()
	next = func() (client.Event, error) {
		r := <-ch
		return r.ev, r.err
	}
	return next, func() { cancel(); s.Close(); <-done }
}

// The event name and data reach subscribers as published; the ctx of
// Subscribe ends the subscription with its error.
func TestPublishedEventsArriveAsPublished(t *testing.T) {
	srv := testenv.NewServer(t, testenv.Options{})
	c := newClient(t, srv.URL, fast)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	s, err := c.Subscribe(ctx, "room", client.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []sse.Event
	for _, p := range []struct {
		name string
		data any
	}{{"", "plain text"}, {"joined", map[string]string{"user": "ann"}}, {"", "two\nlines"}} {
		id, err := c.Publish(ctx, "room", p.name, p.data)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, sse.Event{ID: id, Name: p.name})
	}
	wantData := []string{"plain text", `{"user":"ann"}`, "two\nlines"}
	i := 0
	var end error
	for ev, err := range s.Events() {
		if err != nil {
			end = err
			break
		}
		if ev.ID != want[i].ID || ev.Name != want[i].Name || ev.Data != wantData[i] {
			t.Errorf("event %d: %+v", i, ev)
		}
		if i++; i == len(want) {
			cancel()
		}
	}
	if i != len(want) || !errors.Is(end, context.Canceled) {
		t.Fatalf("read %d events, ended with %v; want %d, then context.Canceled", i, end, len(want))
	}
}
