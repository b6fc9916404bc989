package convtest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

func farFuture() time.Time { return time.Now().Add(time.Hour) }

func testUpdateMessage(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, its := create(t, s, sluice.Conversation{}, user("q"), answer("", sluice.StatusInProgress))
	a := its[1]
	prev := a
	prevConv := c
	for i, u := range []sluice.MessageUpdate{
		{Text: "Hel"},
		{Text: "Hello, wor", Status: sluice.StatusInProgress},
		{Text: "Hello", Usage: &sluice.Usage{PromptTokens: 1}}, // replaces, it does not append
	} {
		if err := s.UpdateMessage(ctx, a.ID, u); err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
		got := item(t, s, c.ID, a.ID)
		want := prev
		want.Text, want.UpdatedAt = u.Text, got.UpdatedAt
		if u.Usage != nil {
			want.Usage = u.Usage
		}
		sameItem(t, fmt.Sprintf("after update %d", i), got, want)
		gotConv := conv(t, s, c.ID)
		if !got.UpdatedAt.After(prev.UpdatedAt) || !gotConv.UpdatedAt.After(prevConv.UpdatedAt) {
			t.Fatalf("update %d: item UpdatedAt %v (was %v), conversation's %v (was %v): both must move on",
				i, got.UpdatedAt, prev.UpdatedAt, gotConv.UpdatedAt, prevConv.UpdatedAt)
		}
		prev, prevConv = got, gotConv
	}
	// The end, with usage; later updates conflict and change nothing.
	usage := &sluice.Usage{PromptTokens: 2, CompletionTokens: 3, TotalTokens: 5}
	if err := s.UpdateMessage(ctx, a.ID, sluice.MessageUpdate{Text: "Hello, world.", Status: sluice.StatusCompleted, Usage: usage}); err != nil {
		t.Fatal(err)
	}
	end := item(t, s, c.ID, a.ID)
	if end.Text != "Hello, world." || end.Status != sluice.StatusCompleted || fmt.Sprint(*end.Usage) != fmt.Sprint(*usage) {
		t.Fatalf("ended message: %s", show(end))
	}
	for _, st := range []sluice.MessageStatus{"", sluice.StatusInProgress, sluice.StatusCompleted, sluice.StatusInterrupted} {
		err := s.UpdateMessage(ctx, a.ID, sluice.MessageUpdate{Text: "late", Status: st})
		wantCode(t, fmt.Sprintf("update of an ended message to %q", st), err, sluice.ECONFLICT)
	}
	sameItem(t, "ended message after late updates", item(t, s, c.ID, a.ID), end)
	wantCode(t, "update of a user message", s.UpdateMessage(ctx, its[0].ID, sluice.MessageUpdate{Text: "x"}), sluice.ECONFLICT)

	// Every end state is kept, with what came with it.
	failure := &sluice.ItemError{Code: sluice.EUPSTREAM, Kind: "upstream_error", Message: "The model failed."}
	for _, u := range []sluice.MessageUpdate{
		{Text: "partial", Status: sluice.StatusFailed, Error: failure},
		{Text: "stopped", Status: sluice.StatusCancelled},
		{Text: "lost", Status: sluice.StatusInterrupted},
	} {
		m := add(t, s, c.ID, answer("", sluice.StatusInProgress))[0]
		if err := s.UpdateMessage(ctx, m.ID, u); err != nil {
			t.Fatalf("ending as %s: %v", u.Status, err)
		}
		got := item(t, s, c.ID, m.ID)
		if got.Text != u.Text || got.Status != u.Status || fmt.Sprint(deref(got.Error)) != fmt.Sprint(deref(u.Error)) {
			t.Fatalf("ended as %s: %s", u.Status, show(got))
		}
		wantCode(t, "update after "+string(u.Status), s.UpdateMessage(ctx, m.ID, sluice.MessageUpdate{Text: "late"}), sluice.ECONFLICT)
	}
}

func testSweep(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, its := create(t, s, sluice.Conversation{Owner: "key-c"}, user("q"),
		answer("", sluice.StatusInProgress), answer("done", sluice.StatusCompleted), answer("stop", sluice.StatusCancelled))
	d, dits := create(t, s, sluice.Conversation{Owner: "key-d"}, answer("", sluice.StatusInProgress), answer("", sluice.StatusInProgress))
	if err := s.UpdateMessage(ctx, its[1].ID, sluice.MessageUpdate{Text: "kept text"}); err != nil {
		t.Fatal(err)
	}
	// Fresh heartbeats are spared.
	if sw, err := s.SweepInterrupted(ctx, time.Now().Add(-time.Hour)); err != nil || sluice.SweptMessages(sw) != 0 {
		t.Fatalf("sweep of fresh messages: %v, %v", sw, err)
	}
	before := map[string]sluice.Item{}
	for _, it := range append(allItems(t, s, c.ID), allItems(t, s, d.ID)...) {
		before[it.ID] = it
	}
	beforeConv := conv(t, s, c.ID)
	sw, err := s.SweepInterrupted(ctx, farFuture())
	slices.SortFunc(sw, func(a, b sluice.Swept) int { return strings.Compare(a.Owner, b.Owner) })
	want := []sluice.Swept{{ConversationID: c.ID, Owner: "key-c", Messages: 1}, {ConversationID: d.ID, Owner: "key-d", Messages: 2}}
	if err != nil || !slices.Equal(sw, want) {
		t.Fatalf("sweep of stale messages: %+v, %v; want each conversation once, with its owner and count: %+v", sw, err, want)
	}
	for _, it := range append(allItems(t, s, c.ID), allItems(t, s, d.ID)...) {
		want := before[it.ID]
		if want.Status == sluice.StatusInProgress {
			want.Status, want.UpdatedAt = sluice.StatusInterrupted, it.UpdatedAt
			if !it.UpdatedAt.After(before[it.ID].UpdatedAt) {
				t.Fatalf("swept %s: UpdatedAt did not move", show(it))
			}
		}
		sameItem(t, "after the sweep", it, want)
	}
	if got := conv(t, s, c.ID); !got.UpdatedAt.After(beforeConv.UpdatedAt) {
		t.Fatalf("a sweep changed a message but not its conversation's UpdatedAt")
	}
	if sw, err := s.SweepInterrupted(ctx, farFuture()); err != nil || sluice.SweptMessages(sw) != 0 {
		t.Fatalf("second sweep: %v, %v; want 0", sw, err)
	}
	wantCode(t, "update after a sweep", s.UpdateMessage(ctx, dits[0].ID, sluice.MessageUpdate{Text: "late", Status: sluice.StatusCompleted}), sluice.ECONFLICT)
	// Touch of ended, unknown or no messages is harmless.
	if err := s.Touch(ctx, its[1].ID, its[2].ID, "msg_00000000000000000000000000000000", "nonsense"); err != nil {
		t.Fatalf("touch of ended and unknown messages: %v", err)
	}
	if err := s.Touch(ctx); err != nil {
		t.Fatalf("touch of nothing: %v", err)
	}
	if got := item(t, s, c.ID, its[1].ID); got.Status != sluice.StatusInterrupted || got.Text != "kept text" {
		t.Fatalf("touched interrupted message: %s", show(got))
	}
}

func testHeartbeat(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, its := create(t, s, sluice.Conversation{}, answer("", sluice.StatusInProgress), answer("", sluice.StatusInProgress), answer("", sluice.StatusInProgress))
	stale, touched, updated := its[0], its[1], its[2]
	mark := time.Now()
	// No signal says that a store's clock has moved past mark; waiting out
	// a few milliseconds puts the heartbeats below on the far side of it at
	// any precision a store keeps (PostgreSQL's is a microsecond).
	time.Sleep(5 * time.Millisecond)
	beforeConv := conv(t, s, c.ID)
	// Many IDs at once, the one that counts last: a store that touches them
	// in batches touches every batch.
	ids := make([]string, 0, 1001)
	for i := range 1000 {
		ids = append(ids, fmt.Sprintf("msg_%032x", i))
	}
	if err := s.Touch(ctx, append(ids, touched.ID)...); err != nil {
		t.Fatal(err)
	}
	sameItem(t, "a touched message is unchanged", item(t, s, c.ID, touched.ID), touched)
	sameConv(t, "a touch changes no conversation", conv(t, s, c.ID), beforeConv)
	if err := s.UpdateMessage(ctx, updated.ID, sluice.MessageUpdate{Text: "more"}); err != nil {
		t.Fatal(err)
	}
	if sw, err := s.SweepInterrupted(ctx, mark.Add(time.Millisecond)); err != nil || sluice.SweptMessages(sw) != 1 {
		t.Fatalf("sweep: %v, %v; want only the message without a fresh heartbeat", sw, err)
	}
	for _, it := range []struct {
		id   string
		want sluice.MessageStatus
	}{{stale.ID, sluice.StatusInterrupted}, {touched.ID, sluice.StatusInProgress}, {updated.ID, sluice.StatusInProgress}} {
		if got := item(t, s, c.ID, it.id); got.Status != it.want {
			t.Fatalf("after the sweep: %s; want %s", show(got), it.want)
		}
	}
}

func testConcurrent(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	const writers, updates = 8, 10
	c, root := create(t, s, sluice.Conversation{Owner: "o"}, user("root"))

	// Each batch goes under the current item as one step: the result is
	// one chain of whole pairs, however the writers interleave.
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, err := s.AddItems(ctx, c.ID, []sluice.Item{user(fmt.Sprint("u", i)), answer("", sluice.StatusInProgress)})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		})
		wg.Go(func() {
			if _, _, err := s.CreateConversation(ctx, sluice.Conversation{Owner: "o"}, []sluice.Item{user("side")}); err != nil {
				t.Errorf("creator %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	chain, err := s.Branch(ctx, c.ID, conv(t, s, c.ID).CurrentID)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 1+2*writers || chain[0].ID != root[0].ID {
		t.Fatalf("after %d concurrent adds of a pair: a branch of %d items from %s", writers, len(chain), chain[0].ID)
	}
	answers := map[string]int{} // the assistant messages, by writer
	for i := 1; i < len(chain); i += 2 {
		u, a := chain[i], chain[i+1]
		if u.Role != "user" || a.Role != "assistant" || u.Seq <= chain[i-1].Seq || a.Seq <= u.Seq {
			t.Fatalf("the chain interleaves batches at %d: %s then %s", i, show(u), show(a))
		}
		var w int
		fmt.Sscanf(u.Text, "u%d", &w)
		answers[a.ID] = w
	}
	if ids, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 100}); len(ids) != 1+writers {
		t.Fatalf("%d conversations after %d concurrent creates", len(ids), writers)
	}

	// Writers of different messages, a second writer racing on each, and
	// readers, all at once; every message ends as its writer ended it.
	for id, w := range answers {
		wg.Go(func() {
			for k := range updates {
				if err := s.UpdateMessage(ctx, id, sluice.MessageUpdate{Text: fmt.Sprint(w, ":", k)}); err != nil {
					t.Errorf("update %d of writer %d: %v", k, w, err)
					return
				}
				if err := s.Touch(ctx, id); err != nil {
					t.Errorf("touch of writer %d: %v", w, err)
				}
			}
			if err := s.UpdateMessage(ctx, id, sluice.MessageUpdate{Text: fmt.Sprint(w, ": done"), Status: sluice.StatusCompleted}); err != nil {
				t.Errorf("end of writer %d: %v", w, err)
			}
		})
		wg.Go(func() {
			for range updates {
				// Racing the writer's end, a late update may conflict; nothing else.
				if err := s.UpdateMessage(ctx, id, sluice.MessageUpdate{Text: "racer"}); err != nil && sluice.ErrorCode(err) != sluice.ECONFLICT {
					t.Errorf("racer on writer %d: %v", w, err)
				}
				if _, _, err := s.Items(ctx, c.ID, sluice.ItemQuery{Limit: 100}); err != nil {
					t.Errorf("reader: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for id, w := range answers {
		if got := item(t, s, c.ID, id); got.Text != fmt.Sprint(w, ": done") || got.Status != sluice.StatusCompleted {
			t.Fatalf("writer %d's message: %s", w, show(got))
		}
	}
}

func testUnicode(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	texts := []string{
		"naïve café, Straße, ÆØÅ",
		"日本語のテキスト、中文，한국어",
		"עברית ועربية من اليمين",
		"emoji 👩‍👩‍👧‍👦 🇺🇦 𝄞 and e\u0301 = é",
		"line\r\nbreaks\r\n\tand tabs\n",
		"quotes ' \" ` and \\ backslashes; -- DROP TABLE items;",
		"",
	}
	items := make([]sluice.Item, len(texts))
	for i, tx := range texts {
		items[i] = user(tx)
	}
	meta := map[string]string{"ключ": "значение", "🔑": "👍", "": "empty key"}
	c, its := create(t, s, sluice.Conversation{Owner: "ключ 🔑", Title: "Ünïcödé 標題 🎉", Metadata: meta}, items...)
	got := conv(t, s, c.ID)
	sameConv(t, "unicode conversation", got, c)
	if got.Title != "Ünïcödé 標題 🎉" || got.Owner != "ключ 🔑" || len(got.Metadata) != 3 || got.Metadata["🔑"] != "👍" {
		t.Fatalf("unicode head changed: %+v", got)
	}
	for i, it := range allItems(t, s, c.ID) {
		if it.Text != texts[i] {
			t.Fatalf("text %d: got %q, want %q", i, it.Text, texts[i])
		}
		sameItem(t, "unicode item", it, its[i])
	}
	a := add(t, s, c.ID, answer("", sluice.StatusInProgress))[0]
	if err := s.UpdateMessage(ctxFor(t), a.ID, sluice.MessageUpdate{Text: texts[3]}); err != nil {
		t.Fatal(err)
	}
	if got := item(t, s, c.ID, a.ID); got.Text != texts[3] {
		t.Fatalf("updated text: got %q, want %q", got.Text, texts[3])
	}
	ids, _ := list(t, s, sluice.ConversationQuery{Owner: "ключ 🔑", Search: "ÆøÅ", Limit: 10})
	wantIDs(t, "search of mixed case", ids, c.ID)
	ids, _ = list(t, s, sluice.ConversationQuery{Owner: "ключ 🔑", Search: "🇺🇦 𝄞", Limit: 10})
	wantIDs(t, "search of emoji", ids, c.ID)
}

func testReopen(t *testing.T, ns NewStore) {
	open := ns(t)
	s, closeFirst := opened(t, open)
	ctx := ctxFor(t)
	c, its := create(t, s, sluice.Conversation{Owner: "o", Title: "kept", Metadata: map[string]string{"a": "b"}},
		user("q"), answer("streaming", sluice.StatusInProgress))
	done := add(t, s, c.ID, sluice.Item{Role: "assistant", Text: "again", ParentID: its[0].ID, Status: sluice.StatusFailed,
		Error: &sluice.ItemError{Code: "upstream", Message: "no"}, Usage: &sluice.Usage{TotalTokens: 9}})
	if err := s.UpdateMessage(ctx, its[1].ID, sluice.MessageUpdate{Text: "streaming more"}); err != nil {
		t.Fatal(err)
	}
	d, _ := create(t, s, sluice.Conversation{Owner: "o"}, user("second"))
	wantConv, wantItems := conv(t, s, c.ID), allItems(t, s, c.ID)
	wantList, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 10})
	closeFirst()

	s, _ = opened(t, open)
	sameConv(t, "conversation after a reopen", conv(t, s, c.ID), wantConv)
	sameItems(t, "items after a reopen", allItems(t, s, c.ID), wantItems)
	gotList, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 10})
	wantIDs(t, "listing after a reopen", gotList, wantList...)
	wantIDs(t, "branch after a reopen", branch(t, s, c.ID, done[0].ID), its[0].ID, done[0].ID)
	ids, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Search: "MORE", Limit: 10})
	wantIDs(t, "search after a reopen", ids, c.ID)

	// Seq goes on increasing, the in-progress message still streams and
	// its heartbeat was kept.
	next := add(t, s, c.ID, user("after"))[0]
	if next.Seq <= wantItems[len(wantItems)-1].Seq || next.ParentID != done[0].ID {
		t.Fatalf("added after a reopen: %s; want a later Seq than %d, under %s", show(next), wantItems[len(wantItems)-1].Seq, done[0].ID)
	}
	if sw, err := s.SweepInterrupted(ctx, wantItems[1].UpdatedAt.Add(-time.Second)); err != nil || sluice.SweptMessages(sw) != 0 {
		t.Fatalf("sweep before the heartbeat after a reopen: %v, %v", sw, err)
	}
	if sw, err := s.SweepInterrupted(ctx, farFuture()); err != nil || sluice.SweptMessages(sw) != 1 {
		t.Fatalf("sweep after a reopen: %v, %v; want 1", sw, err)
	}
	if err := s.DeleteConversation(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
}
