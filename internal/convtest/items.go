package convtest

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

func testCreate(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	before := time.Now().Add(-time.Second) // the store's clock may be another's, within reason
	meta := map[string]string{"project": "sluice", "k": ""}
	long := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	c, items := create(t, s, sluice.Conversation{
		ID: "conv_mine", Owner: "key_1", Title: "Greetings", Metadata: meta,
		CurrentID: "msg_mine", CreatedAt: long, UpdatedAt: long,
	},
		sluice.Item{Role: "system", Text: "Be brief.", CreatedAt: long, Seq: 99, ConversationID: "conv_x"},
		user("Hello"),
		answer("Hi!", sluice.StatusCompleted),
	)
	meta["project"] = "changed" // the store keeps its own copy

	if !convIDShape.MatchString(c.ID) {
		t.Fatalf("conversation ID %q is not conv_ and 32 hex digits", c.ID)
	}
	if c.Owner != "key_1" || c.Title != "Greetings" || !maps.Equal(c.Metadata, map[string]string{"project": "sluice", "k": ""}) {
		t.Fatalf("created %+v: owner, title or metadata not kept", c)
	}
	if c.CreatedAt.Before(before) || c.UpdatedAt.Before(c.CreatedAt) {
		t.Fatalf("created at %v, updated at %v: not set by the store", c.CreatedAt, c.UpdatedAt)
	}
	if c.CurrentID != items[2].ID {
		t.Fatalf("CurrentID %q, want the last item %q", c.CurrentID, items[2].ID)
	}
	seen := map[string]bool{}
	for i, it := range items {
		if !itemIDShape.MatchString(it.ID) || seen[it.ID] {
			t.Fatalf("item %d ID %q: not msg_ and 32 hex digits, or not unique", i, it.ID)
		}
		seen[it.ID] = true
		if it.ConversationID != c.ID || it.Status != sluice.StatusCompleted || it.CreatedAt.Before(c.CreatedAt) ||
			!it.UpdatedAt.Equal(it.CreatedAt) {
			t.Fatalf("item %d = %s: conversation, default status or times not set by the store", i, show(it))
		}
		if i == 0 && it.ParentID != "" || i > 0 && (it.ParentID != items[i-1].ID || it.Seq <= items[i-1].Seq || it.CreatedAt.Before(items[i-1].CreatedAt)) {
			t.Fatalf("item %d = %s: each item goes under the one before, later in Seq", i, show(it))
		}
	}
	sameConv(t, "read back", conv(t, s, c.ID), c)
	sameItems(t, "items read back", allItems(t, s, c.ID), items)
	for _, it := range items {
		sameItem(t, "item read back", item(t, s, c.ID, it.ID), it)
	}

	// A conversation may start empty; its first item is then a root.
	e, none, err := s.CreateConversation(ctx, sluice.Conversation{}, nil)
	if err != nil || len(none) != 0 || e.CurrentID != "" || e.ID == c.ID || len(e.Metadata) != 0 {
		t.Fatalf("empty conversation: %+v, %v, %v", e, none, err)
	}
	if root := add(t, s, e.ID, user("first")); root[0].ParentID != "" || conv(t, s, e.ID).CurrentID != root[0].ID {
		t.Fatalf("first item of an empty conversation: %s", show(root[0]))
	}
}

func testItemFields(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	failed := sluice.Item{
		Role: "assistant", Text: "partial", Status: sluice.StatusFailed, Model: "gpt-x", StreamID: "gen_42",
		Usage: &sluice.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7},
		Error: &sluice.ItemError{Code: sluice.EUPSTREAM, Kind: "upstream_timeout", Message: "The model did not answer."},
	}
	statuses := []sluice.MessageStatus{sluice.StatusInProgress, sluice.StatusCompleted, sluice.StatusCancelled, sluice.StatusInterrupted}
	batch := []sluice.Item{user("q"), failed}
	for _, st := range statuses {
		batch = append(batch, answer(string(st), st))
	}
	batch = append(batch, sluice.Item{Role: "developer", Text: "d"})
	c, items := create(t, s, sluice.Conversation{}, batch...)
	for i, want := range batch {
		got := item(t, s, c.ID, items[i].ID)
		want.ID, want.ConversationID, want.ParentID, want.CreatedAt, want.UpdatedAt, want.Seq =
			got.ID, c.ID, got.ParentID, got.CreatedAt, got.UpdatedAt, got.Seq
		if want.Status == "" {
			want.Status = sluice.StatusCompleted
		}
		sameItem(t, fmt.Sprintf("item %d", i), got, want)
		sameItem(t, fmt.Sprintf("item %d as created", i), items[i], want)
	}
	// The caller's Usage and Error are copied, not kept by reference.
	failed.Usage.TotalTokens, failed.Error.Message = 0, "changed"
	if got := item(t, s, c.ID, items[1].ID); got.Usage.TotalTokens != 7 || got.Error.Message != "The model did not answer." {
		t.Fatalf("the store shares the caller's usage or error: %s", show(got))
	}
}

func testAddUnderCurrent(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	c, first := create(t, s, sluice.Conversation{}, user("u1"), answer("a1", ""))
	added := add(t, s, c.ID, user("u2"), answer("a2", sluice.StatusInProgress))
	if added[0].ParentID != first[1].ID || added[1].ParentID != added[0].ID || added[0].Seq <= first[1].Seq || added[1].Seq <= added[0].Seq {
		t.Fatalf("added %s and %s after %s: want a chain under the current item, later in Seq", show(added[0]), show(added[1]), show(first[1]))
	}
	if got := conv(t, s, c.ID); got.CurrentID != added[1].ID || !got.UpdatedAt.After(c.UpdatedAt) {
		t.Fatalf("after adding: %+v; want CurrentID %s and a later UpdatedAt than %v", got, added[1].ID, c.UpdatedAt)
	}
	wantIDs(t, "items", idsOf(allItems(t, s, c.ID)), append(idsOf(first), idsOf(added)...)...)
	wantIDs(t, "branch", branch(t, s, c.ID, added[1].ID), append(idsOf(first), idsOf(added)...)...)
}

func testSiblings(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	c, first := create(t, s, sluice.Conversation{}, user("u1"), answer("a1", ""), user("u2"), answer("a2", ""))
	u1, a1, u2, a2 := first[0], first[1], first[2], first[3]

	// Regenerate the first answer: a sibling of a1, and the new current item.
	again := add(t, s, c.ID, sluice.Item{Role: "assistant", Text: "a1 again", ParentID: u1.ID})[0]
	if again.ParentID != u1.ID || conv(t, s, c.ID).CurrentID != again.ID {
		t.Fatalf("regenerated %s; want it under %s and current", show(again), u1.ID)
	}
	// The next item without a parent goes under the regenerated one.
	next := add(t, s, c.ID, user("u3"))[0]
	if next.ParentID != again.ID {
		t.Fatalf("after a regenerate, %s went under %q, want %q", show(next), next.ParentID, again.ID)
	}
	// An explicit parent may be any item; the ones after it chain under it.
	edit := add(t, s, c.ID, sluice.Item{Role: "user", Text: "u2 edited", ParentID: a1.ID}, answer("a2'", ""))
	if edit[0].ParentID != a1.ID || edit[1].ParentID != edit[0].ID {
		t.Fatalf("edited branch %s, %s: want under %s, then chained", show(edit[0]), show(edit[1]), a1.ID)
	}
	wantIDs(t, "old branch", branch(t, s, c.ID, a2.ID), u1.ID, a1.ID, u2.ID, a2.ID)
	wantIDs(t, "regenerated branch", branch(t, s, c.ID, next.ID), u1.ID, again.ID, next.ID)
	wantIDs(t, "edited branch", branch(t, s, c.ID, edit[1].ID), u1.ID, a1.ID, edit[0].ID, edit[1].ID)
	wantIDs(t, "branch to an inner item", branch(t, s, c.ID, a1.ID), u1.ID, a1.ID)
	wantIDs(t, "branch to the root", branch(t, s, c.ID, u1.ID), u1.ID)
	wantIDs(t, "every item in Seq order", idsOf(allItems(t, s, c.ID)),
		u1.ID, a1.ID, u2.ID, a2.ID, again.ID, next.ID, edit[0].ID, edit[1].ID)
}

func testBadParent(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, mine := create(t, s, sluice.Conversation{Owner: "o"}, user("mine"))
	other, theirs := create(t, s, sluice.Conversation{Owner: "o"}, user("theirs"))
	for what, parent := range map[string]string{
		"another conversation's item": theirs[0].ID,
		"an unknown item":             "msg_00000000000000000000000000000000",
		"not an item ID":              "nonsense",
	} {
		_, err := s.AddItems(ctx, c.ID, []sluice.Item{user("ok"), {Role: "user", Text: "bad", ParentID: parent}})
		wantCode(t, "a parent that is "+what, err, sluice.EINVALID)
	}
	// Nothing of a refused batch is stored, and nothing moved.
	wantIDs(t, "items after refused batches", idsOf(allItems(t, s, c.ID)), mine[0].ID)
	sameConv(t, "conversation after refused batches", conv(t, s, c.ID), c)
	wantIDs(t, "the other conversation", idsOf(allItems(t, s, other.ID)), theirs[0].ID)

	// A new conversation has nothing a ParentID could name.
	_, _, err := s.CreateConversation(ctx, sluice.Conversation{Owner: "o"}, []sluice.Item{{Role: "user", Text: "x", ParentID: mine[0].ID}})
	wantCode(t, "create with a parent", err, sluice.EINVALID)
	ids, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 10})
	wantIDs(t, "conversations after a refused create", ids, other.ID, c.ID)
}

func testNotFound(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	a, as := create(t, s, sluice.Conversation{}, user("a"))
	_, bs := create(t, s, sluice.Conversation{}, user("b"))
	title := "t"
	for _, id := range []string{"conv_00000000000000000000000000000000", "nonsense", ""} {
		_, err := s.Conversation(ctx, id)
		wantCode(t, "Conversation "+id, err, sluice.ENOTFOUND)
		_, err = s.UpdateConversation(ctx, id, sluice.ConversationPatch{Title: &title})
		wantCode(t, "UpdateConversation "+id, err, sluice.ENOTFOUND)
		wantCode(t, "DeleteConversation "+id, s.DeleteConversation(ctx, id), sluice.ENOTFOUND)
		_, err = s.AddItems(ctx, id, []sluice.Item{user("x")})
		wantCode(t, "AddItems "+id, err, sluice.ENOTFOUND)
		_, _, err = s.Items(ctx, id, sluice.ItemQuery{Limit: 10})
		wantCode(t, "Items "+id, err, sluice.ENOTFOUND)
		_, err = s.Item(ctx, id, as[0].ID)
		wantCode(t, "Item under "+id, err, sluice.ENOTFOUND)
		_, err = s.Branch(ctx, id, as[0].ID)
		wantCode(t, "Branch under "+id, err, sluice.ENOTFOUND)
		wantCode(t, "DeleteItem under "+id, s.DeleteItem(ctx, id, as[0].ID), sluice.ENOTFOUND)
	}
	for _, id := range []string{"msg_00000000000000000000000000000000", "nonsense", bs[0].ID} {
		_, err := s.Item(ctx, a.ID, id)
		wantCode(t, "Item "+id, err, sluice.ENOTFOUND)
		_, err = s.Branch(ctx, a.ID, id)
		wantCode(t, "Branch "+id, err, sluice.ENOTFOUND)
		wantCode(t, "DeleteItem "+id, s.DeleteItem(ctx, a.ID, id), sluice.ENOTFOUND)
	}
	wantCode(t, "UpdateMessage of an unknown item", s.UpdateMessage(ctx, "msg_00000000000000000000000000000000", sluice.MessageUpdate{Text: "x"}), sluice.ENOTFOUND)
	// The other conversation's item survived the attempt to delete it here.
	wantIDs(t, "items of b", []string{item(t, s, bs[0].ConversationID, bs[0].ID).ID}, bs[0].ID)
}

func testDeleteItem(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, its := create(t, s, sluice.Conversation{}, user("u1"), answer("a1", ""), user("u2"), answer("a2", ""))
	u1, a1, u2, a2 := its[0], its[1], its[2], its[3]
	sib := add(t, s, c.ID, sluice.Item{Role: "assistant", Text: "a1'", ParentID: u1.ID})[0]
	current := add(t, s, c.ID, user("u3"))[0] // under sib
	before := conv(t, s, c.ID)

	// An inner item: its child moves under its parent, and the rest stays.
	if err := s.DeleteItem(ctx, c.ID, a1.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.Item(ctx, c.ID, a1.ID)
	wantCode(t, "deleted item", err, sluice.ENOTFOUND)
	if got := item(t, s, c.ID, u2.ID); got.ParentID != u1.ID {
		t.Fatalf("child of the deleted item: %s; want it under %s", show(got), u1.ID)
	}
	wantIDs(t, "branch through the deleted item", branch(t, s, c.ID, a2.ID), u1.ID, u2.ID, a2.ID)
	after := conv(t, s, c.ID)
	if after.CurrentID != current.ID || !after.UpdatedAt.After(before.UpdatedAt) {
		t.Fatalf("after deleting an inner item: %+v; want CurrentID %s kept and UpdatedAt after %v", after, current.ID, before.UpdatedAt)
	}

	// The current item: its parent becomes current.
	if err := s.DeleteItem(ctx, c.ID, current.ID); err != nil {
		t.Fatal(err)
	}
	if got := conv(t, s, c.ID).CurrentID; got != sib.ID {
		t.Fatalf("after deleting the current item, CurrentID = %q, want its parent %q", got, sib.ID)
	}

	// The root: its children become roots.
	if err := s.DeleteItem(ctx, c.ID, u1.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{u2.ID, sib.ID} {
		if got := item(t, s, c.ID, id); got.ParentID != "" {
			t.Fatalf("child of the deleted root: %s; want a root", show(got))
		}
	}
	wantIDs(t, "branch after deleting the root", branch(t, s, c.ID, a2.ID), u2.ID, a2.ID)
	wantIDs(t, "items left", idsOf(allItems(t, s, c.ID)), u2.ID, a2.ID, sib.ID)
	wantCode(t, "deleting it again", s.DeleteItem(ctx, c.ID, u1.ID), sluice.ENOTFOUND)

	// A deleted root that was current leaves no current item.
	solo, one := create(t, s, sluice.Conversation{}, user("alone"))
	if err := s.DeleteItem(ctx, solo.ID, one[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := conv(t, s, solo.ID); got.CurrentID != "" {
		t.Fatalf("after deleting the only item, CurrentID = %q", got.CurrentID)
	}
	if next := add(t, s, solo.ID, user("again"))[0]; next.ParentID != "" {
		t.Fatalf("an item added to an emptied conversation: %s; want a root", show(next))
	}
}

func testItemPages(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	batch := make([]sluice.Item, 25)
	for i := range batch {
		batch[i] = user(fmt.Sprint("m", i))
	}
	c, its := create(t, s, sluice.Conversation{}, batch...)
	ids := idsOf(its)
	rev := make([]string, len(ids))
	for i, id := range ids {
		rev[len(ids)-1-i] = id
	}
	for _, order := range []struct {
		desc bool
		want []string
	}{{false, ids}, {true, rev}} {
		for _, limit := range []int{1, 10, 24, 25, 26, 100} {
			var got []string
			after, pages := "", 0
			for {
				page, more, err := s.Items(ctx, c.ID, sluice.ItemQuery{After: after, Limit: limit, Desc: order.desc})
				if err != nil {
					t.Fatalf("desc %v, limit %d, after %q: %v", order.desc, limit, after, err)
				}
				pages++
				got = append(got, idsOf(page)...)
				// more says whether anything follows, never a page too early or late.
				if more != (len(got) < len(ids)) || len(page) != min(limit, len(ids)-len(got)+len(page)) {
					t.Fatalf("desc %v, limit %d: page %d has %d items, more %v, after %d in all", order.desc, limit, pages, len(page), more, len(got))
				}
				if !more {
					break
				}
				after = page[len(page)-1].ID
			}
			wantIDs(t, fmt.Sprintf("desc %v, limit %d", order.desc, limit), got, order.want...)
		}
		// After the last item: nothing, and nothing more.
		page, more, err := s.Items(ctx, c.ID, sluice.ItemQuery{After: order.want[len(ids)-1], Limit: 5, Desc: order.desc})
		if err != nil || len(page) != 0 || more {
			t.Fatalf("after the last item (desc %v): %q, %v, %v", order.desc, idsOf(page), more, err)
		}
	}
	page, more, err := s.Items(ctx, c.ID, sluice.ItemQuery{})
	if err != nil || !more {
		t.Fatalf("limit 0: %v, more %v", err, more)
	}
	wantIDs(t, "limit 0 means 20", idsOf(page), ids[:20]...)

	_, other := create(t, s, sluice.Conversation{}, user("elsewhere"))
	for what, q := range map[string]sluice.ItemQuery{
		"limit 101":                         {Limit: 101},
		"limit -1":                          {Limit: -1},
		"after an unknown item":             {Limit: 5, After: "msg_00000000000000000000000000000000"},
		"after another conversation's":      {Limit: 5, After: other[0].ID},
		"desc after another conversation's": {Limit: 5, After: other[0].ID, Desc: true},
	} {
		_, _, err := s.Items(ctx, c.ID, q)
		wantCode(t, what, err, sluice.EINVALID)
	}
}
