package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// TestTheSweeperTakesOnlyTheDeadAnswers: with sweepers running on two
// nodes, an answer whose writer is gone (in progress, its heartbeat
// stale) is marked interrupted with its text, once; an answer whose model
// is silent for three times the stale bound, but whose recorder lives, is
// spared and completes.
func TestTheSweeperTakesOnlyTheDeadAnswers(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		// Loose enough that a heartbeat (every quarter of it) is never late
		// by a whole bound on a loaded machine running -race.
		const stale = 1500 * time.Millisecond
		m := &stepModel{Tokens: []string{"still ", "here"}, Step: make(chan struct{})}
		store := open(t)
		o := convo.Options{Stale: stale, SweepEvery: stale / 6, FlushEvery: 20 * time.Millisecond}
		e := convEnv(t, func(*testing.T) sluice.ConversationStore { return store },
			envOptions{Models: map[string]sluice.Model{"step": m}, Conv: o}, false)
		// Another node's sweeper on the same database.
		o.Store = store
		other := convo.New(o)
		t.Cleanup(func() { other.Shutdown(context.Background()) })

		c := createConv(t, e, nil)
		// An answer its node died under: stored in progress, never written again.
		dead, err := store.AddItems(context.Background(), c.ID, []sluice.Item{
			{Role: "user", Text: "q", Status: sluice.StatusCompleted},
			{Role: "assistant", Text: "half an answer", Status: sluice.StatusInProgress, Model: "demo", StreamID: "gone"}})
		if err != nil {
			t.Fatal(err)
		}

		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("go", "model", "step", "conversation", c.ID))
		live := resp.Header.Get(api.HeaderMessageID)
		m.Step <- struct{}{}
		waitItem(t, e, c.ID, live, "the first token stored", func(it itemJSON) bool { return text(it) == "still " })

		it := waitItem(t, e, c.ID, dead[1].ID, "the dead answer interrupted", func(it itemJSON) bool { return it.Status == "interrupted" })
		if text(it) != "half an answer" {
			t.Fatalf("the interrupted answer kept %q", text(it))
		}
		time.Sleep(3 * stale) // the model is silent past the stale bound, thrice
		if it := ok[itemJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID+"/items/"+live, nil)); it.Status != "in_progress" {
			t.Fatalf("a live but silent answer was taken for dead: %+v", it)
		}
		m.Step <- struct{}{}
		events(t, resp, -1)
		if it := waitItem(t, e, c.ID, live, "the live answer completed", completed); text(it) != "still here" {
			t.Fatalf("stored %q", text(it))
		}
	})
}

// TestASweepTellsTheChangeFeed: the tabs that show a dead answer as
// streaming learn from the change feed that it ended, as of any change.
func TestASweepTellsTheChangeFeed(t *testing.T) {
	const stale = 300 * time.Millisecond
	store := openSQLite(t)
	e := convEnv(t, func(*testing.T) sluice.ConversationStore { return store },
		envOptions{Conv: convo.Options{Stale: stale, SweepEvery: stale / 3}}, false)
	c := createConv(t, e, nil)
	// Bounded, so that a feed that is never told fails rather than hangs.
	ctx, cancel := context.WithTimeout(context.Background(), 20*stale)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.URL+"/v1/conversations/events", nil)
	feed, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer feed.Body.Close()
	dead, err := store.AddItems(context.Background(), c.ID, []sluice.Item{
		{Role: "assistant", Text: "half", Status: sluice.StatusInProgress, Model: "demo", StreamID: "gone"}})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing else changes the conversation: its first event is the sweep's.
	ev, err := sse.NewReader(feed.Body).Next()
	if err != nil {
		t.Fatalf("the feed told nothing within %v: %v", 20*stale, err)
	}
	var ce wire.ConversationEvent
	if err := json.Unmarshal([]byte(ev.Data), &ce); err != nil || ce.Type != "conversation.updated" || ce.ID != c.ID {
		t.Fatalf("feed: %q (%v); want %s updated", ev.Data, err, c.ID)
	}
	if it := ok[itemJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID+"/items/"+dead[0].ID, nil)); it.Status != "interrupted" {
		t.Fatalf("after the feed's event the answer is %s, want interrupted", it.Status)
	}
}
