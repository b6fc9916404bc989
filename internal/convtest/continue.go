package convtest

import (
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// testGivenIDs: a caller that stores in the background names its items
// first (convo does, to answer its client at once); the store keeps those
// names, refuses one taken or malformed, and names the others.
func testGivenIDs(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	mine := convcheck.NewItemID()
	c, made := create(t, s, sluice.Conversation{}, sluice.Item{ID: mine, Role: "user", Text: "u1"})
	if made[0].ID != mine {
		t.Fatalf("created item %s, want the ID given, %s", show(made[0]), mine)
	}
	u2, a2 := convcheck.NewItemID(), convcheck.NewItemID()
	added := add(t, s, c.ID, sluice.Item{ID: u2, Role: "user", Text: "u2", ParentID: mine},
		sluice.Item{ID: a2, Role: "assistant", Status: sluice.StatusInProgress}, user("u3"))
	if added[0].ID != u2 || added[1].ID != a2 || added[1].ParentID != u2 || !itemIDShape.MatchString(added[2].ID) ||
		added[2].ParentID != a2 || conv(t, s, c.ID).CurrentID != added[2].ID {
		t.Fatalf("added %s, %s, %s: want the IDs given kept, the last one named by the store", show(added[0]), show(added[1]), show(added[2]))
	}
	sameItem(t, "a named item read back", item(t, s, c.ID, a2), added[1])

	other, _ := create(t, s, sluice.Conversation{})
	for what, tc := range map[string]struct {
		conv  string
		items []sluice.Item
		code  string
	}{
		"an ID taken in the same conversation": {c.ID, []sluice.Item{user("ok"), {ID: a2, Role: "user", Text: "again"}}, sluice.ECONFLICT},
		"an ID taken in another conversation":  {other.ID, []sluice.Item{{ID: mine, Role: "user", Text: "again"}}, sluice.ECONFLICT},
		"one ID twice in a batch":              {c.ID, []sluice.Item{{ID: u2, Role: "user"}, {ID: u2, Role: "user"}}, sluice.EINVALID},
		"an ID not of the store's shape":       {c.ID, []sluice.Item{{ID: "msg_mine", Role: "user", Text: "x"}}, sluice.EINVALID},
		"an ID in capitals":                    {c.ID, []sluice.Item{{ID: "msg_" + "ABCDEF0123456789ABCDEF0123456789", Role: "user"}}, sluice.EINVALID},
	} {
		_, err := s.AddItems(ctx, tc.conv, tc.items)
		wantCode(t, what, err, tc.code)
	}
	wantIDs(t, "items after refused batches", idsOf(allItems(t, s, c.ID)), mine, u2, a2, added[2].ID)
	wantIDs(t, "the other conversation after a refused batch", idsOf(allItems(t, s, other.ID)))
	_, _, err := s.CreateConversation(ctx, sluice.Conversation{}, []sluice.Item{{ID: mine, Role: "user"}})
	wantCode(t, "create with an ID taken", err, sluice.ECONFLICT)
}

// testContinuation: what a chat reads before it starts is the head, the
// size and the branch to the current item or to the one it names, as the
// separate reads have them.
func testContinuation(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, first := create(t, s, sluice.Conversation{Owner: "o", Title: "t"}, user("u1"), answer("a1é", ""), user("u2"))
	sib := add(t, s, c.ID, sluice.Item{Role: "assistant", Text: "a1'", ParentID: first[0].ID})[0]
	head := conv(t, s, c.ID)

	got, err := s.Continuation(ctx, c.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	sameConv(t, "the head", got.Conversation, head)
	if got.Items != 4 || got.Bytes != len("u1a1éu2a1'") {
		t.Fatalf("size %d items, %d bytes; want 4, %d", got.Items, got.Bytes, len("u1a1éu2a1'"))
	}
	wantIDs(t, "the branch to the current item", idsOf(got.Branch), first[0].ID, sib.ID)
	full, err := s.Branch(ctx, c.ID, sib.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameItems(t, "the branch's items", got.Branch, full)

	got, err = s.Continuation(ctx, c.ID, first[2].ID)
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "the branch to a named item", idsOf(got.Branch), idsOf(first)...)

	_, theirs := create(t, s, sluice.Conversation{}, user("theirs"))
	for what, id := range map[string]string{
		"another conversation's item": theirs[0].ID,
		"an unknown item":             convcheck.NewItemID(),
		"not an item ID":              "nonsense\x00",
	} {
		got, err := s.Continuation(ctx, c.ID, id)
		if err != nil || len(got.Branch) != 0 || got.Conversation.ID != c.ID {
			t.Fatalf("continuing under %s: %+v, %v; want the head and no branch", what, got, err)
		}
	}

	empty, _ := create(t, s, sluice.Conversation{})
	got, err = s.Continuation(ctx, empty.ID, "")
	if err != nil || len(got.Branch) != 0 || got.Items != 0 || got.Bytes != 0 || got.Conversation.ID != empty.ID {
		t.Fatalf("an empty conversation: %+v, %v", got, err)
	}
	for _, id := range []string{convcheck.NewConversationID(), "conv_\x00"} {
		_, err = s.Continuation(ctx, id, "")
		wantCode(t, "an unknown conversation", err, sluice.ENOTFOUND)
	}
}
