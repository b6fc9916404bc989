package convtest

import (
	"fmt"
	"maps"
	"testing"

	"github.com/sluice-dev/sluice"
)

func testListOrder(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	a, as := create(t, s, sluice.Conversation{Owner: "o"}, user("a"), user("a2"))
	b, _ := create(t, s, sluice.Conversation{Owner: "o"}, user("b"))
	c, cs := create(t, s, sluice.Conversation{Owner: "o"}, answer("c", sluice.StatusInProgress))
	all := func(what string, want ...string) {
		t.Helper()
		ids, more := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 10})
		wantIDs(t, what, ids, want...)
		if more {
			t.Fatalf("%s: more after every conversation", what)
		}
	}
	all("newest first", c.ID, b.ID, a.ID)
	title := "renamed"
	if _, err := s.UpdateConversation(ctx, a.ID, sluice.ConversationPatch{Title: &title}); err != nil {
		t.Fatal(err)
	}
	all("after a rename", a.ID, c.ID, b.ID)
	add(t, s, b.ID, user("more"))
	all("after adding items", b.ID, a.ID, c.ID)
	if err := s.UpdateMessage(ctx, cs[0].ID, sluice.MessageUpdate{Text: "c grows"}); err != nil {
		t.Fatal(err)
	}
	all("after a message update", c.ID, b.ID, a.ID)
	if err := s.DeleteItem(ctx, a.ID, as[0].ID); err != nil {
		t.Fatal(err)
	}
	all("after deleting an item", a.ID, c.ID, b.ID)

	// Pages: more says whether anything follows, at the edge too.
	for limit, want := range map[int][]bool{1: {true, true, false}, 2: {true, false}, 3: {false}, 4: {false}} {
		var got []string
		var mores []bool
		after := ""
		for {
			ids, more := list(t, s, sluice.ConversationQuery{Owner: "o", After: after, Limit: limit})
			got, mores = append(got, ids...), append(mores, more)
			if !more {
				break
			}
			after = ids[len(ids)-1]
		}
		wantIDs(t, fmt.Sprintf("pages of %d", limit), got, a.ID, c.ID, b.ID)
		if fmt.Sprint(mores) != fmt.Sprint(want) {
			t.Fatalf("pages of %d: more %v, want %v", limit, mores, want)
		}
	}
	if ids, more := list(t, s, sluice.ConversationQuery{Owner: "o", After: b.ID, Limit: 5}); len(ids) != 0 || more {
		t.Fatalf("after the oldest: %q, more %v", ids, more)
	}

	// Limit 0 means 20.
	for range 20 {
		create(t, s, sluice.Conversation{Owner: "o"})
	}
	if ids, more := list(t, s, sluice.ConversationQuery{Owner: "o"}); len(ids) != 20 || !more {
		t.Fatalf("limit 0: %d conversations, more %v; want 20 and more", len(ids), more)
	}

	foreign, _ := create(t, s, sluice.Conversation{Owner: "p"})
	for what, q := range map[string]sluice.ConversationQuery{
		"limit 101":                        {Owner: "o", Limit: 101},
		"limit -1":                         {Owner: "o", Limit: -1},
		"after an unknown conversation":    {Owner: "o", Limit: 5, After: "conv_00000000000000000000000000000000"},
		"after another owner's":            {Owner: "o", Limit: 5, After: foreign.ID},
		"after another owner's, searching": {Owner: "o", Limit: 5, After: foreign.ID, Search: "x"},
	} {
		_, _, err := s.Conversations(ctx, q)
		wantCode(t, what, err, sluice.EINVALID)
	}
}

func testSearch(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	paris, _ := create(t, s, sluice.Conversation{Owner: "o", Title: "Trip to Paris"}, user("What to pack?"))
	summer, sitems := create(t, s, sluice.Conversation{Owner: "o"}, user("I like ÉTÉ in Zürich"), answer("", sluice.StatusInProgress))
	sure, _ := create(t, s, sluice.Conversation{Owner: "o", Title: "100% sure_thing"}, user("plain words"))
	create(t, s, sluice.Conversation{Owner: "p", Title: "Paris again"}, user("What to pack? été"))
	if err := s.UpdateMessage(ctx, sitems[1].ID, sluice.MessageUpdate{Text: "The answer is 42."}); err != nil {
		t.Fatal(err)
	}
	find := func(q string, want ...string) {
		t.Helper()
		ids, more := list(t, s, sluice.ConversationQuery{Owner: "o", Search: q, Limit: 10})
		wantIDs(t, fmt.Sprintf("search %q", q), ids, want...)
		if more {
			t.Fatalf("search %q: more after every match", q)
		}
	}
	find("paris", paris.ID)
	find("PACK", paris.ID)
	find("été", summer.ID)
	find("ZÜRICH", summer.ID)
	find("answer IS 42", summer.ID) // written by UpdateMessage
	find("%", sure.ID)              // literal, not a wildcard
	find("_", sure.ID)
	find("0% s", sure.ID)
	find("\\")
	find("nowhere")
	find("", summer.ID, sure.ID, paris.ID)  // the update moved summer up
	find("t", summer.ID, sure.ID, paris.ID) // a title, texts of both roles

	// A renamed title is found by its new words only; a deleted item's text
	// is no longer found.
	title := "Weekend in Rome"
	if _, err := s.UpdateConversation(ctx, paris.ID, sluice.ConversationPatch{Title: &title}); err != nil {
		t.Fatal(err)
	}
	find("rome", paris.ID)
	find("paris")
	if err := s.DeleteItem(ctx, summer.ID, sitems[1].ID); err != nil {
		t.Fatal(err)
	}
	find("answer is")

	// Matches page like any listing.
	var got []string
	after := ""
	for {
		ids, more := list(t, s, sluice.ConversationQuery{Owner: "o", Search: "T", After: after, Limit: 1})
		got = append(got, ids...)
		if !more {
			break
		}
		after = ids[0]
	}
	wantIDs(t, "search paged", got, summer.ID, paris.ID, sure.ID)
}

func testOwners(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	owners := []string{"", "key_a", "key_b"}
	made := map[string][]string{}
	for i := range 2 {
		for _, o := range owners {
			c, _ := create(t, s, sluice.Conversation{Owner: o, Title: fmt.Sprint("shared words ", i)}, user("shared text"))
			made[o] = append([]string{c.ID}, made[o]...)
		}
	}
	for _, o := range owners {
		for _, q := range []string{"", "shared"} {
			ids, more := list(t, s, sluice.ConversationQuery{Owner: o, Search: q, Limit: 10})
			wantIDs(t, fmt.Sprintf("owner %q, search %q", o, q), ids, made[o]...)
			if more {
				t.Fatalf("owner %q: more after every conversation", o)
			}
		}
		// The store keeps the owner and leaves checking it to the caller.
		for _, id := range made[o] {
			if c := conv(t, s, id); c.Owner != o {
				t.Fatalf("conversation %s owner %q, want %q", id, c.Owner, o)
			}
		}
	}
	if ids, _ := list(t, s, sluice.ConversationQuery{Owner: "key_c", Limit: 10}); len(ids) != 0 {
		t.Fatalf("an owner with nothing sees %q", ids)
	}
}

func testUpdateConversation(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, _ := create(t, s, sluice.Conversation{Owner: "o", Title: "old", Metadata: map[string]string{"a": "1", "b": "2"}}, user("u"))
	step := func(what string, p sluice.ConversationPatch, title string, meta map[string]string) {
		t.Helper()
		got, err := s.UpdateConversation(ctx, c.ID, p)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.Title != title || !maps.Equal(got.Metadata, meta) || !got.UpdatedAt.After(c.UpdatedAt) {
			t.Fatalf("%s: got %+v; want title %q, metadata %v, UpdatedAt after %v", what, got, title, meta, c.UpdatedAt)
		}
		want := c
		want.Title, want.Metadata, want.UpdatedAt = title, meta, got.UpdatedAt
		sameConv(t, what, got, want)
		sameConv(t, what+", read back", conv(t, s, c.ID), want)
		c = got
	}
	newTitle, empty := "new", ""
	step("a title", sluice.ConversationPatch{Title: &newTitle}, "new", map[string]string{"a": "1", "b": "2"})
	step("metadata", sluice.ConversationPatch{Metadata: map[string]string{"c": "3"}}, "new", map[string]string{"c": "3"})
	step("both", sluice.ConversationPatch{Title: &empty, Metadata: map[string]string{"d": "4", "e": ""}}, "", map[string]string{"d": "4", "e": ""})
	step("empty metadata", sluice.ConversationPatch{Metadata: map[string]string{}}, "", nil)
}

func testDeleteConversation(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	gone, its := create(t, s, sluice.Conversation{Owner: "o", Title: "gone words"}, user("u"), answer("gone words", sluice.StatusInProgress))
	kept, kits := create(t, s, sluice.Conversation{Owner: "o"}, user("u"), answer("a", sluice.StatusInProgress))
	if err := s.DeleteConversation(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Conversation(ctx, gone.ID)
	wantCode(t, "deleted conversation", err, sluice.ENOTFOUND)
	for _, it := range its {
		_, err := s.Item(ctx, gone.ID, it.ID)
		wantCode(t, "item of a deleted conversation", err, sluice.ENOTFOUND)
	}
	wantCode(t, "updating a message of a deleted conversation", s.UpdateMessage(ctx, its[1].ID, sluice.MessageUpdate{Text: "late"}), sluice.ENOTFOUND)
	wantCode(t, "deleting it again", s.DeleteConversation(ctx, gone.ID), sluice.ENOTFOUND)
	ids, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 10})
	wantIDs(t, "listing", ids, kept.ID)
	ids, _ = list(t, s, sluice.ConversationQuery{Owner: "o", Search: "gone", Limit: 10})
	wantIDs(t, "search", ids)
	// Its in-progress message is not swept: it is gone, and the other one
	// is the only one left to mark.
	if sw, err := s.SweepInterrupted(ctx, farFuture()); err != nil || sluice.SweptMessages(sw) != 1 {
		t.Fatalf("sweep after a delete: %v, %v; want 1", sw, err)
	}
	sameItems(t, "the other conversation", allItems(t, s, kept.ID)[:1], kits[:1])
}
