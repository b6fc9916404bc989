package api_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// countingStore is a real conversation store that counts the writes a
// recorder makes, and can be told to fail the next few of them as a
// database that went away would.
type countingStore struct {
	sluice.ConversationStore
	writes atomic.Int64 // AddItems, UpdateMessage and Touch calls
	fail   atomic.Int64 // UpdateMessage calls still to fail
}

var errDown = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "database_unavailable", Message: "The database cannot be reached."}

func (s *countingStore) AddItems(ctx context.Context, id string, items []sluice.Item) ([]sluice.Item, error) {
	s.writes.Add(1)
	return s.ConversationStore.AddItems(ctx, id, items)
}

func (s *countingStore) UpdateMessage(ctx context.Context, id string, u sluice.MessageUpdate) error {
	s.writes.Add(1)
	if s.fail.Add(-1) >= 0 {
		return errDown
	}
	return s.ConversationStore.UpdateMessage(ctx, id, u)
}

func (s *countingStore) Touch(ctx context.Context, ids ...string) error {
	s.writes.Add(1)
	return s.ConversationStore.Touch(ctx, ids...)
}

// TestAnAnswerCostsAWriteASecond: an answer streamed at 50 tokens a second
// for about 3 s is stored in about one write a second (plus the first and
// the last), not one a token.
func TestAnAnswerCostsAWriteASecond(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		cs := &countingStore{}
		e := convEnv(t, func(t *testing.T) sluice.ConversationStore { cs.ConversationStore = open(t); return cs },
			envOptions{Demo: demo.Options{TokensPerSecond: 50, MaxTokens: 150}}, false)
		c := createConv(t, e, nil)
		start := time.Now()
		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("Tell me a long story", "conversation", c.ID))
		msg := resp.Header.Get(api.HeaderMessageID)
		evs := events(t, resp, -1)
		elapsed := time.Since(start)
		waitItem(t, e, c.ID, msg, "the answer stored", completed)
		tokens := len(evs) - 2 // but the role and [DONE]
		writes := cs.writes.Load()
		// One to add the messages, one a second at most while it streams,
		// one for the end, one of slack for where the seconds fall.
		bound := 3 + int64(elapsed/time.Second)
		t.Logf("%d tokens in %v: %d writes (bound %d)", tokens, elapsed.Round(time.Millisecond), writes, bound)
		if tokens < 100 {
			t.Fatalf("only %d tokens: the premise (a long answer) does not hold", tokens)
		}
		if writes > bound || writes < 3 {
			t.Fatalf("%d writes for %d tokens in %v; want 3 to %d", writes, tokens, elapsed, bound)
		}
	})
}

// TestADatabaseLostMidAnswerDoesNotDisturbTheStream: writes that fail
// while the answer streams (and its first try at the end) cost the stream
// nothing; the end is stored once the database is back.
func TestADatabaseLostMidAnswerDoesNotDisturbTheStream(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		cs := &countingStore{}
		m := &stepModel{Tokens: []string{"one ", "two ", "three"}, Step: make(chan struct{})}
		e := convEnv(t, func(t *testing.T) sluice.ConversationStore { cs.ConversationStore = open(t); return cs },
			envOptions{Models: map[string]sluice.Model{"step": m}, Conv: convo.Options{FlushEvery: 20 * time.Millisecond}}, false)
		c := createConv(t, e, nil)
		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("go", "model", "step", "conversation", c.ID))
		msg := resp.Header.Get(api.HeaderMessageID)
		cs.fail.Store(1 << 20) // the database is down from now on
		rd := sse.NewReader(resp.Body)
		var datas []string
		next := func() string {
			ev, err := rd.Next()
			if err != nil {
				t.Fatal(err)
			}
			datas = append(datas, ev.Data)
			return ev.Data
		}
		next() // the role
		for range 3 {
			m.Step <- struct{}{}
			next()
		}
		// The recorder has tried (and failed) at least once before the end.
		testenv.Eventually(t, "a failed write", func() bool { return cs.writes.Load() >= 2 })
		next() // the finish reason
		if last := next(); last != "[DONE]" {
			t.Fatalf("the stream ended with %q", last)
		}
		if txt, _ := content(t, toEvents(datas)); txt != "one two three" {
			t.Fatalf("streamed %q", txt)
		}
		cs.fail.Store(1) // the first try at the end fails too; then it is back
		if it := waitItem(t, e, c.ID, msg, "the end stored once the database is back", completed); text(it) != "one two three" {
			t.Fatalf("stored %q", text(it))
		}
	})
}

func toEvents(datas []string) []sse.Event {
	out := make([]sse.Event, len(datas))
	for i, d := range datas {
		out[i] = sse.Event{Data: d}
	}
	return out
}

// TestTheChangeFeedTellsOfEveryChange: a follower of the change feed is
// told of conversations created, changed (renamed, a chat stored) and
// deleted, in order, and only of its own key's.
func TestTheChangeFeedTellsOfEveryChange(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		e := convEnv(t, open, envOptions{}, true)
		ann, bob := bearer(keyAnn), bearer(keyBob)
		feed := do(t, e, "GET", "/v1/conversations/events", nil, ann...)
		if feed.StatusCode != 200 {
			t.Fatalf("feed: %d", feed.StatusCode)
		}
		rd := sse.NewReader(feed.Body)
		next := func() wire.ConversationEvent { return nextChange(t, rd) }
		createConv(t, e, nil, bob...) // not ann's: not on her feed
		c := createConv(t, e, nil, ann...)
		if ev := next(); ev.Type != "conversation.created" || ev.ID != c.ID {
			t.Fatalf("got %+v, want created %s", ev, c.ID)
		}
		ok[convJSON](t, do(t, e, "POST", "/v1/conversations/"+c.ID, map[string]any{"title": "x"}, ann...))
		if ev := next(); ev.Type != "conversation.updated" || ev.ID != c.ID || ev.UpdatedAt == 0 {
			t.Fatalf("got %+v, want updated", ev)
		}
		events(t, do(t, e, "POST", "/v1/chat/completions", chatBody("hi", "conversation", c.ID), ann...), -1)
		// The chat's messages, then its stored end.
		for range 2 {
			if ev := next(); ev.Type != "conversation.updated" || ev.ID != c.ID {
				t.Fatalf("got %+v, want updated by the chat", ev)
			}
		}
		ok[wire.Deleted](t, do(t, e, "DELETE", "/v1/conversations/"+c.ID, nil, ann...))
		if ev := next(); ev.Type != "conversation.deleted" || ev.ID != c.ID {
			t.Fatalf("got %+v, want deleted", ev)
		}
	})
}
