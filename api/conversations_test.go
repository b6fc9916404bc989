package api_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// TestConversationLifecycle walks the whole API once: create with items,
// read, list, rename, add (under a chosen parent too), page the items both
// ways, read and delete one item, delete the conversation.
func TestConversationLifecycle(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		e := convEnv(t, open, envOptions{}, false)
		c := createConv(t, e, map[string]any{"title": "Trip", "metadata": map[string]string{"topic": "travel"},
			"items": []map[string]any{
				{"type": "message", "role": "system", "content": "Be brief."},
				{"role": "user", "content": []map[string]any{{"type": "input_text", "text": "Where "}, {"type": "text", "text": "to?"}}},
			}})
		if c.Object != "conversation" || !strings.HasPrefix(c.ID, "conv_") || c.Title != "Trip" || c.Metadata["topic"] != "travel" || c.CurrentID == nil {
			t.Fatalf("created %+v", c)
		}
		got := ok[convJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID, nil))
		if got.ID != c.ID || got.Title != "Trip" {
			t.Fatalf("got %+v", got)
		}
		items := itemsAsc(t, e, c.ID)
		if len(items) != 2 || items[0].Role != "system" || text(items[1]) != "Where to?" || items[1].Content[0].Type != "input_text" ||
			items[1].ParentID == nil || *items[1].ParentID != items[0].ID || items[0].ParentID != nil || items[1].Status != "completed" {
			t.Fatalf("items %+v", items)
		}

		renamed := ok[convJSON](t, do(t, e, "POST", "/v1/conversations/"+c.ID, map[string]any{"title": "Trip to Rome"}))
		if renamed.Title != "Trip to Rome" || renamed.Metadata["topic"] != "travel" {
			t.Fatalf("renamed %+v", renamed)
		}

		added := ok[wire.List[itemJSON]](t, do(t, e, "POST", "/v1/conversations/"+c.ID+"/items", map[string]any{"items": []map[string]any{
			{"role": "assistant", "content": []map[string]any{{"type": "output_text", "text": "Rome."}}},
			{"role": "user", "content": "Why?"},
		}}))
		if len(added.Data) != 2 || added.Data[0].Content[0].Type != "output_text" || added.Data[0].Content[0].Annotations == nil ||
			*added.Data[0].ParentID != items[1].ID || *added.Data[1].ParentID != added.Data[0].ID {
			t.Fatalf("added %+v", added)
		}
		// A sibling of the answer: under the first user message again.
		sib := ok[wire.List[itemJSON]](t, do(t, e, "POST", "/v1/conversations/"+c.ID+"/items", map[string]any{"items": []map[string]any{
			{"role": "assistant", "content": "Paris.", "parent_id": items[1].ID}}}))
		if *sib.Data[0].ParentID != items[1].ID {
			t.Fatalf("sibling under %v, want %s", sib.Data[0].ParentID, items[1].ID)
		}
		head := ok[convJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID, nil))
		if head.CurrentID == nil || *head.CurrentID != sib.Data[0].ID {
			t.Fatalf("current %v, want the sibling %s", head.CurrentID, sib.Data[0].ID)
		}

		// Pages of 2, newest first (OpenAI's default), then oldest first.
		var desc []string
		after := ""
		for {
			page := ok[wire.List[itemJSON]](t, do(t, e, "GET", "/v1/conversations/"+c.ID+"/items?limit=2&after="+after, nil))
			for _, it := range page.Data {
				desc = append(desc, text(it))
			}
			if !page.HasMore {
				break
			}
			after = *page.LastID
		}
		if want := "Paris.|Why?|Rome.|Where to?|Be brief."; strings.Join(desc, "|") != want {
			t.Fatalf("items newest first: %q, want %q", strings.Join(desc, "|"), want)
		}
		one := ok[itemJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID+"/items/"+added.Data[0].ID, nil))
		if text(one) != "Rome." || one.Role != "assistant" {
			t.Fatalf("item %+v", one)
		}
		ok[convJSON](t, do(t, e, "DELETE", "/v1/conversations/"+c.ID+"/items/"+added.Data[0].ID, nil))
		wantStatus(t, do(t, e, "GET", "/v1/conversations/"+c.ID+"/items/"+added.Data[0].ID, nil), 404, "")
		if n := len(itemsAsc(t, e, c.ID)); n != 4 {
			t.Fatalf("%d items after deleting one of 5", n)
		}

		del := ok[wire.Deleted](t, do(t, e, "DELETE", "/v1/conversations/"+c.ID, nil))
		if !del.Deleted || del.Object != "conversation.deleted" || del.ID != c.ID {
			t.Fatalf("deleted %+v", del)
		}
		wantStatus(t, do(t, e, "GET", "/v1/conversations/"+c.ID, nil), 404, "")
		wantStatus(t, do(t, e, "GET", "/v1/conversations/"+c.ID+"/items", nil), 404, "")
	})
}

// TestConversationListPagesAndSearches: a key's conversations come newest
// change first, in pages that say whether more follow, and a search finds
// titles and message texts alike, whatever their case.
func TestConversationListPagesAndSearches(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		e := convEnv(t, open, envOptions{}, false)
		var ids []string
		for i := range 5 {
			c := createConv(t, e, map[string]any{"title": fmt.Sprintf("chat %d", i)})
			ids = append(ids, c.ID)
		}
		// Touch the oldest: it becomes the newest change.
		do(t, e, "POST", "/v1/conversations/"+ids[0]+"/items", map[string]any{"items": []map[string]any{{"role": "user", "content": "Tell me about Zanzibar"}}}).Body.Close()

		var got []string
		after := ""
		for {
			page := ok[wire.List[convJSON]](t, do(t, e, "GET", "/v1/conversations?limit=2&after="+after, nil))
			if page.Object != "list" || len(page.Data) > 2 {
				t.Fatalf("page %+v", page)
			}
			for _, c := range page.Data {
				got = append(got, c.ID)
			}
			if !page.HasMore {
				break
			}
			after = *page.LastID
		}
		if len(got) != 5 || got[0] != ids[0] {
			t.Fatalf("listed %v; want 5 with the changed %s first", got, ids[0])
		}
		found := ok[wire.List[convJSON]](t, do(t, e, "GET", "/v1/conversations?q=zanZIBAR", nil))
		if len(found.Data) != 1 || found.Data[0].ID != ids[0] {
			t.Fatalf("search by text found %+v", found.Data)
		}
		found = ok[wire.List[convJSON]](t, do(t, e, "GET", "/v1/conversations?q=CHAT+3", nil))
		if len(found.Data) != 1 || found.Data[0].Title != "chat 3" {
			t.Fatalf("search by title found %+v", found.Data)
		}
	})
}

// TestConversationsBelongToTheirKey: another key's conversation is 403 on
// every route and in chats, an unknown one 404, and listings keep keys
// apart.
func TestConversationsBelongToTheirKey(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		e := convEnv(t, open, envOptions{}, true)
		ann, bob := bearer(keyAnn), bearer(keyBob)
		c := createConv(t, e, map[string]any{"title": "ann's", "items": []map[string]any{{"role": "user", "content": "hi"}}}, ann...)
		items := itemsAsc(t, e, c.ID, ann...)
		for _, r := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/conversations/" + c.ID, nil},
			{"POST", "/v1/conversations/" + c.ID, map[string]any{"title": "mine"}},
			{"DELETE", "/v1/conversations/" + c.ID, nil},
			{"GET", "/v1/conversations/" + c.ID + "/items", nil},
			{"POST", "/v1/conversations/" + c.ID + "/items", map[string]any{"items": []map[string]any{{"role": "user", "content": "x"}}}},
			{"GET", "/v1/conversations/" + c.ID + "/items/" + items[0].ID, nil},
			{"DELETE", "/v1/conversations/" + c.ID + "/items/" + items[0].ID, nil},
			{"GET", "/v1/conversations/" + c.ID + "/export", nil},
			{"POST", "/v1/chat/completions", chatBody("hi", "conversation", c.ID)},
		} {
			wantStatus(t, do(t, e, r.method, r.path, r.body, bob...), 403, "conversation_forbidden")
		}
		unknown := "conv_" + strings.Repeat("0", 32)
		wantStatus(t, do(t, e, "GET", "/v1/conversations/"+unknown, nil, ann...), 404, "")
		wantStatus(t, do(t, e, "POST", "/v1/chat/completions", chatBody("hi", "conversation", unknown), ann...), 404, "")
		wantStatus(t, do(t, e, "GET", "/v1/conversations", nil), 401, "")

		if l := ok[wire.List[convJSON]](t, do(t, e, "GET", "/v1/conversations", nil, bob...)); len(l.Data) != 0 {
			t.Fatalf("bob lists %+v", l.Data)
		}
		if got := ok[convJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID, nil, ann...)); got.Title != "ann's" {
			t.Fatalf("ann's conversation changed under bob: %+v", got)
		}
	})
}

// TestConversationBadInputIsA400: malformed JSON, wrong types, bad IDs and
// bounds just past their edge get clear 400s naming the field; the edge
// itself passes.
func TestConversationBadInputIsA400(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		e := convEnv(t, open, envOptions{}, false)
		c := createConv(t, e, nil)
		pairs := func(n int) map[string]string {
			m := map[string]string{}
			for i := range n {
				m[fmt.Sprintf("k%d", i)] = "v"
			}
			return m
		}
		many := make([]map[string]any, convo.MaxItemsPerRequest+1)
		for i := range many {
			many[i] = map[string]any{"role": "user", "content": "x"}
		}
		for _, tc := range []struct {
			name, method, path string
			body               any
			param, code        string
		}{
			{"broken JSON", "POST", "/v1/conversations", `{"title":`, "", "invalid_json"},
			{"title a number", "POST", "/v1/conversations", `{"title":5}`, "title", "invalid_type"},
			{"items an object", "POST", "/v1/conversations", `{"items":{}}`, "items", "invalid_type"},
			{"metadata value a number", "POST", "/v1/conversations", `{"metadata":{"a":1}}`, "metadata", "invalid_type"},
			{"title too long", "POST", "/v1/conversations", map[string]any{"title": strings.Repeat("t", sluice.MaxTitleBytes+1)}, "title", "title_too_long"},
			{"metadata pairs +1", "POST", "/v1/conversations", map[string]any{"metadata": pairs(sluice.MaxMetadataPairs + 1)}, "metadata", "too_many_metadata_pairs"},
			{"metadata value too long", "POST", "/v1/conversations", map[string]any{"metadata": map[string]string{"k": strings.Repeat("v", convo.MaxMetadataValue+1)}}, "metadata.k", "metadata_value_too_long"},
			{"items +1", "POST", "/v1/conversations/" + c.ID + "/items", map[string]any{"items": many}, "items", "too_many_items"},
			{"no role", "POST", "/v1/conversations/" + c.ID + "/items", `{"items":[{"content":"x"}]}`, "items[0].role", "missing_required_parameter"},
			{"bad role", "POST", "/v1/conversations/" + c.ID + "/items", `{"items":[{"role":"tool","content":"x"}]}`, "items[0].role", "invalid_value"},
			{"content a number", "POST", "/v1/conversations/" + c.ID + "/items", `{"items":[{"role":"user","content":3}]}`, "items[0].content", "invalid_type"},
			{"image part", "POST", "/v1/conversations/" + c.ID + "/items", `{"items":[{"role":"user","content":[{"type":"input_image"}]}]}`, "items[0].content[0].type", "invalid_value"},
			{"no items", "POST", "/v1/conversations/" + c.ID + "/items", `{"items":[]}`, "items", "empty_array"},
			{"bad parent ID", "POST", "/v1/conversations/" + c.ID + "/items", `{"items":[{"role":"user","content":"x","parent_id":"nope"}]}`, "items[0].parent_id", "invalid_item_id"},
			{"bad conversation ID", "GET", "/v1/conversations/conv_nothex", nil, "conversation_id", "invalid_conversation_id"},
			{"bad item ID", "GET", "/v1/conversations/" + c.ID + "/items/msg_1", nil, "item_id", "invalid_item_id"},
			{"limit +1", "GET", fmt.Sprintf("/v1/conversations?limit=%d", convo.MaxPageLimit+1), nil, "limit", "invalid_value"},
			{"limit a word", "GET", "/v1/conversations?limit=ten", nil, "limit", "invalid_type"},
			{"bad after", "GET", "/v1/conversations?after=x", nil, "after", "invalid_conversation_id"},
			{"bad order", "GET", "/v1/conversations/" + c.ID + "/items?order=up", nil, "order", "invalid_value"},
			{"bad format", "GET", "/v1/conversations/" + c.ID + "/export?format=pdf", nil, "format", "invalid_value"},
			{"chat: conversation a number", "POST", "/v1/chat/completions", chatBody("hi", "conversation", 7), "conversation", "invalid_type"},
			{"chat: bad conversation ID", "POST", "/v1/chat/completions", chatBody("hi", "conversation", "conv_x"), "conversation", "invalid_conversation_id"},
			{"chat: parent without conversation", "POST", "/v1/chat/completions", chatBody("hi", "parent_id", "msg_"+strings.Repeat("a", 32)), "parent_id", "missing_required_parameter"},
			{"chat: unknown parent", "POST", "/v1/chat/completions", chatBody("hi", "conversation", c.ID, "parent_id", "msg_"+strings.Repeat("a", 32)), "parent_id", "invalid_parent"},
			{"chat: nothing to answer", "POST", "/v1/chat/completions", chatBody("", "conversation", c.ID, "messages", []any{}), "messages", "empty_array"},
			{"chat: tool message", "POST", "/v1/chat/completions", chatBody("", "conversation", c.ID, "messages", []map[string]any{{"role": "tool", "content": "x", "tool_call_id": "1"}}), "messages[0].role", "invalid_value"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp := do(t, e, tc.method, tc.path, tc.body)
				if resp.StatusCode != 400 {
					t.Fatalf("status %d, want 400", resp.StatusCode)
				}
				eb := decode[errorBody](t, resp)
				if eb.Error.Code == nil || *eb.Error.Code != tc.code || (tc.param != "" && (eb.Error.Param == nil || *eb.Error.Param != tc.param)) {
					t.Fatalf("code %v param %v (%s), want %s on %q", deref(eb.Error.Code), deref(eb.Error.Param), eb.Error.Message, tc.code, tc.param)
				}
				if eb.Error.Message == "" {
					t.Fatal("no message")
				}
			})
		}
		// The edges themselves pass.
		createConv(t, e, map[string]any{"title": strings.Repeat("t", sluice.MaxTitleBytes), "metadata": pairs(sluice.MaxMetadataPairs)})
		ok[wire.List[convJSON]](t, do(t, e, "GET", fmt.Sprintf("/v1/conversations?limit=%d", convo.MaxPageLimit), nil))
		ok[wire.List[itemJSON]](t, do(t, e, "POST", "/v1/conversations/"+c.ID+"/items", map[string]any{"items": many[:convo.MaxItemsPerRequest]}))
	})
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

// TestConversationsOffAre404: a server that keeps no conversations says so
// on every conversation route and to a chat that names one, and plain
// chats go on.
func TestConversationsOffAre404(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, r := range []struct{ method, path string }{
		{"POST", "/v1/conversations"}, {"GET", "/v1/conversations"}, {"GET", "/v1/conversations/events"},
		{"GET", "/v1/conversations/conv_" + strings.Repeat("0", 32)},
	} {
		wantStatus(t, do(t, e, r.method, r.path, nil), 404, "conversations_off")
	}
	wantStatus(t, do(t, e, "POST", "/v1/chat/completions", chatBody("hi", "conversation", "conv_"+strings.Repeat("0", 32))), 404, "conversations_off")
	if txt, last := content(t, events(t, do(t, e, "POST", "/v1/chat/completions", chatBody("hi")), -1)); txt == "" || last != "[DONE]" {
		t.Fatalf("plain chat: %q, last %q", txt, last)
	}
}

// TestConversationRoutesAnswer405WithAllow: a conversation path asked with
// a method it is not served with gets 405 and the methods it is.
func TestConversationRoutesAnswer405WithAllow(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := "conv_" + strings.Repeat("0", 32)
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/v1/conversations", "GET, HEAD, POST"},
		{"PATCH", "/v1/conversations/" + id, "GET, HEAD, POST, DELETE"},
		{"DELETE", "/v1/conversations/" + id + "/export", "GET, HEAD"},
		{"PUT", "/v1/conversations/" + id + "/items/msg_" + strings.Repeat("0", 32), "GET, HEAD, DELETE"},
	} {
		resp := do(t, e, tc.method, tc.path, nil)
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.allow)
		}
	}
}

// TestConversationExport: JSON has the head and every item in the API's
// shapes, as an attachment; Markdown the current branch as people read it.
func TestConversationExport(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		e := convEnv(t, open, envOptions{}, false)
		c := createConv(t, e, map[string]any{"title": "Recipes", "items": []map[string]any{
			{"role": "user", "content": "Pancakes?"}, {"role": "assistant", "content": "Flour, eggs, milk."}}})
		resp := do(t, e, "GET", "/v1/conversations/"+c.ID+"/export", nil)
		if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Content-Disposition") != `attachment; filename="`+c.ID+`.json"` {
			t.Fatalf("json export headers %v", resp.Header)
		}
		ex := ok[convo.ExportJSON](t, resp)
		if ex.ID != c.ID || ex.Title != "Recipes" || len(ex.Items) != 2 || ex.Items[1].Content[0].Text != "Flour, eggs, milk." {
			t.Fatalf("json export %+v", ex)
		}
		resp = do(t, e, "GET", "/v1/conversations/"+c.ID+"/export?format=markdown", nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/markdown") ||
			!strings.Contains(resp.Header.Get("Content-Disposition"), c.ID+".md") {
			t.Fatalf("markdown export: %d %v", resp.StatusCode, resp.Header)
		}
		md, _ := io.ReadAll(resp.Body)
		for _, want := range []string{"# Recipes\n", "## User\n\nPancakes?\n", "## Assistant\n\nFlour, eggs, milk.\n"} {
			if !strings.Contains(string(md), want) {
				t.Fatalf("markdown lacks %q:\n%s", want, md)
			}
		}
	})
}

// TestConversationFeedFromStart: the change feed replays the events it
// keeps with ?from=start, as a topic does, and without it starts at the
// next change.
func TestConversationFeedFromStart(t *testing.T) {
	e := convEnv(t, openSQLite, envOptions{}, false)
	a := createConv(t, e, map[string]any{"title": "a"})
	b := createConv(t, e, map[string]any{"title": "b"})
	replay := do(t, e, "GET", "/v1/conversations/events?from=start", nil)
	defer replay.Body.Close()
	live := do(t, e, "GET", "/v1/conversations/events", nil)
	defer live.Body.Close()
	c := createConv(t, e, map[string]any{"title": "c"}) // so that no read below waits for ever
	rd := sse.NewReader(replay.Body)
	for _, want := range []string{a.ID, b.ID, c.ID} {
		if ce := nextChange(t, rd); ce.Type != "conversation.created" || ce.ID != want {
			t.Fatalf("replay: %s %s, want %s created", ce.Type, ce.ID, want)
		}
	}
	if ce := nextChange(t, sse.NewReader(live.Body)); ce.Type != "conversation.created" || ce.ID != c.ID {
		t.Fatalf("from now on: first event %s %s, want %s created", ce.Type, ce.ID, c.ID)
	}
}
