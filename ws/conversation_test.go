package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sqlite"
)

// TestAChatOverWebSocketCarriesAConversation: chat.start takes the same
// extra "conversation" field as the HTTP API (both start chats through
// admit), tells where the answer is stored, and the answer is stored
// whole once its stream has ended.
func TestAChatOverWebSocketCarriesAConversation(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	o := fast
	o.conv = store
	e := newEnv(t, o)

	var conv struct{ ID string }
	resp := testenv.Do(t, http.DefaultClient, "POST", e.URL+"/v1/conversations", map[string]any{})
	if err := json.NewDecoder(resp.Body).Decode(&conv); err != nil || conv.ID == "" {
		t.Fatalf("create: %s %v", resp.Status, err)
	}

	c := e.dial(t)
	c.send(map[string]any{"type": "chat.start", "id": "r1", "body": chatBody("hello over ws", "conversation", conv.ID)})
	started := c.expect("started")
	if started.Conversation != conv.ID || started.Message == "" {
		t.Fatalf("started %+v; want it to name conversation %s and a message", started, conv.ID)
	}
	streamed, last := text(t, datas(c.untilEnd(started.Stream)))
	if last != "[DONE]" || streamed == "" {
		t.Fatalf("streamed %q, last %q", streamed, last)
	}
	var it struct {
		Status  string
		Content []struct{ Text string }
	}
	testenv.Eventually(t, "the answer stored", func() bool {
		r := testenv.Do(t, http.DefaultClient, "GET", e.URL+"/v1/conversations/"+conv.ID+"/items/"+started.Message, nil)
		defer r.Body.Close()
		return json.NewDecoder(r.Body).Decode(&it) == nil && it.Status == "completed"
	})
	if len(it.Content) != 1 || it.Content[0].Text != streamed {
		t.Fatalf("stored %+v, streamed %q", it.Content, streamed)
	}
}
