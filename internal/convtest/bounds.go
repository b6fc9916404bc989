package convtest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// The bounds are tested just past their edges, with as few writes as that
// takes: a batch of MaxConversationItems in one call, and a few big texts
// rather than many small ones.

func testMaxItems(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	many := make([]sluice.Item, sluice.MaxConversationItems+1)
	for i := range many {
		many[i] = user("x")
	}
	_, _, err := s.CreateConversation(ctx, sluice.Conversation{Owner: "o"}, many)
	wantCode(t, "create with MaxConversationItems+1", err, sluice.ETOOLARGE)
	if ids, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 10}); len(ids) != 0 {
		t.Fatalf("a refused create left %q", ids)
	}

	c, its := create(t, s, sluice.Conversation{Owner: "o"}, many[:sluice.MaxConversationItems-1]...)
	last := add(t, s, c.ID, user("the last that fits"))[0]
	_, err = s.AddItems(ctx, c.ID, []sluice.Item{user("one too many")})
	wantCode(t, "add past MaxConversationItems", err, sluice.ETOOLARGE)
	if got := conv(t, s, c.ID); got.CurrentID != last.ID {
		t.Fatalf("a refused add moved CurrentID to %q", got.CurrentID)
	}
	// Deleting one makes room for one.
	if err := s.DeleteItem(ctx, c.ID, its[0].ID); err != nil {
		t.Fatal(err)
	}
	add(t, s, c.ID, user("fits again"))
	_, err = s.AddItems(ctx, c.ID, []sluice.Item{user("one too many again")})
	wantCode(t, "add past MaxConversationItems after a delete and an add", err, sluice.ETOOLARGE)
}

func testMaxBytes(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	// Bytes, not runes: "é" is two bytes.
	full := strings.Repeat("é", sluice.MaxConversationBytes/2)
	_, _, err := s.CreateConversation(ctx, sluice.Conversation{Owner: "o"}, []sluice.Item{user(full), user("x")})
	wantCode(t, "create with MaxConversationBytes+1", err, sluice.ETOOLARGE)

	c, _ := create(t, s, sluice.Conversation{}, user(full[:len(full)-10]), answer("", sluice.StatusInProgress))
	_, err = s.AddItems(ctx, c.ID, []sluice.Item{user("0123456789a")})
	wantCode(t, "add of MaxConversationBytes+1", err, sluice.ETOOLARGE)
	a := add(t, s, c.ID, answer("01234", sluice.StatusInProgress))[0]
	// 5 bytes are left: an update may grow the text by 5, not 6.
	wantCode(t, "update to MaxConversationBytes+1", s.UpdateMessage(ctx, a.ID, sluice.MessageUpdate{Text: "0123456789a"}), sluice.ETOOLARGE)
	if got := item(t, s, c.ID, a.ID); got.Text != "01234" || got.Status != sluice.StatusInProgress {
		t.Fatalf("a refused update changed the message: %s", show(got))
	}
	if err := s.UpdateMessage(ctx, a.ID, sluice.MessageUpdate{Text: "0123456789"}); err != nil {
		t.Fatalf("update to exactly MaxConversationBytes: %v", err)
	}
	// A shorter text gives bytes back, and so does a deleted item.
	if err := s.UpdateMessage(ctx, a.ID, sluice.MessageUpdate{Text: "", Status: sluice.StatusCancelled}); err != nil {
		t.Fatal(err)
	}
	add(t, s, c.ID, user("0123456789"))
	_, err = s.AddItems(ctx, c.ID, []sluice.Item{user("x")})
	wantCode(t, "add past MaxConversationBytes again", err, sluice.ETOOLARGE)
	if err := s.DeleteItem(ctx, c.ID, conv(t, s, c.ID).CurrentID); err != nil {
		t.Fatal(err)
	}
	add(t, s, c.ID, user("0123456789"))
}

func testHeadBounds(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	meta := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprint("k", i)] = "v"
		}
		return m
	}
	title := strings.Repeat("t", sluice.MaxTitleBytes-1) + "é" // bytes, not runes
	fits := meta(sluice.MaxMetadataPairs - 1)
	key, value := strings.Repeat("k", convcheck.MaxMetadataKeyBytes), strings.Repeat("v", convcheck.MaxMetadataValueBytes)
	fits[key] = value
	c, _ := create(t, s, sluice.Conversation{Title: title[1:], Metadata: fits})
	for what, bad := range map[string]sluice.Conversation{
		"a title of MaxTitleBytes+1":           {Title: title},
		"metadata of MaxMetadataPairs+1 pairs": {Metadata: meta(sluice.MaxMetadataPairs + 1)},
		"a metadata key one byte too long":     {Metadata: map[string]string{key + "k": "v"}},
		"a metadata value one byte too long":   {Metadata: map[string]string{"k": value + "v"}},
	} {
		_, _, err := s.CreateConversation(ctx, bad, nil)
		wantCode(t, "create with "+what, err, sluice.EINVALID)
		_, err = s.UpdateConversation(ctx, c.ID, sluice.ConversationPatch{Title: &bad.Title, Metadata: bad.Metadata})
		wantCode(t, "update with "+what, err, sluice.EINVALID)
	}
	sameConv(t, "after refused updates", conv(t, s, c.ID), c)
	if ids, _ := list(t, s, sluice.ConversationQuery{Limit: 10}); len(ids) != 1 {
		t.Fatalf("refused creates left conversations: %q", ids)
	}
}

func testBadItems(t *testing.T, ns NewStore) {
	s := newStore(t, ns)
	ctx := ctxFor(t)
	c, its := create(t, s, sluice.Conversation{Owner: "o"}, user("fine"))
	for what, bad := range map[string]sluice.Item{
		"no role":                    {Text: "x"},
		"an unknown role":            {Role: "tool", Text: "x"},
		"an unknown status":          {Role: "assistant", Text: "x", Status: "done"},
		"a user message in progress": {Role: "user", Text: "x", Status: sluice.StatusInProgress},
		"a system message cancelled": {Role: "system", Text: "x", Status: sluice.StatusCancelled},
		"text that is not UTF-8":     {Role: "user", Text: "\xff\xfe"},
		"text with a NUL byte":       {Role: "user", Text: "a\x00b"},
	} {
		_, err := s.AddItems(ctx, c.ID, []sluice.Item{user("ok"), bad})
		wantCode(t, "add "+what, err, sluice.EINVALID)
		_, _, err = s.CreateConversation(ctx, sluice.Conversation{Owner: "o"}, []sluice.Item{bad})
		wantCode(t, "create with "+what, err, sluice.EINVALID)
	}
	for what, bad := range map[string]sluice.Conversation{
		"a title that is not UTF-8":  {Title: "\xff"},
		"a title with a NUL byte":    {Title: "\x00"},
		"metadata that is not UTF-8": {Metadata: map[string]string{"k": "\xff"}},
		"a metadata key with a NUL":  {Metadata: map[string]string{"\x00": "v"}},
	} {
		bad.Owner = "o"
		_, _, err := s.CreateConversation(ctx, bad, nil)
		wantCode(t, "create with "+what, err, sluice.EINVALID)
	}
	a := add(t, s, c.ID, answer("", sluice.StatusInProgress))[0]
	for what, u := range map[string]sluice.MessageUpdate{
		"an unknown status":      {Text: "x", Status: "done"},
		"text that is not UTF-8": {Text: "\xff"},
		"text with a NUL byte":   {Text: "\x00"},
	} {
		wantCode(t, "update with "+what, s.UpdateMessage(ctx, a.ID, u), sluice.EINVALID)
	}
	wantIDs(t, "items after refused writes", idsOf(allItems(t, s, c.ID)), its[0].ID, a.ID)
	if ids, _ := list(t, s, sluice.ConversationQuery{Owner: "o", Limit: 10}); len(ids) != 1 {
		t.Fatalf("refused creates left conversations: %q", ids)
	}
	if got := item(t, s, c.ID, a.ID); got.Text != "" || got.Status != sluice.StatusInProgress {
		t.Fatalf("refused updates changed the message: %s", show(got))
	}
}
