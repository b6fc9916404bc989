package api_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/postgres"
	"github.com/sluice-dev/sluice/sqlite"
)

type route struct {
	method, path string
	body         any
}

// wantDown checks that every route answers 503 database_unavailable with
// Retry-After, and that a chat without a conversation streams as always.
func wantDown(t *testing.T, e *env, routes []route) {
	t.Helper()
	for _, r := range routes {
		resp := do(t, e, r.method, r.path, r.body)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", r.method, r.path)
		}
		wantStatus(t, resp, 503, "database_unavailable")
	}
	if txt, last := content(t, events(t, do(t, e, "POST", "/v1/chat/completions", chatBody("hi")), -1)); txt == "" || last != "[DONE]" {
		t.Fatalf("a chat without a conversation: %q, last %q", txt, last)
	}
}

// TestADatabaseDownIsA503AndChatsStreamOn: with PostgreSQL stopped, the
// conversation routes and a chat that names a conversation answer 503
// database_unavailable with Retry-After, while a chat without one streams
// as always; once the database is back, so are conversations.
func TestADatabaseDownIsA503AndChatsStreamOn(t *testing.T) {
	pg := testenv.StartPostgresServer(t)
	store, err := postgres.Open(context.Background(), pg.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := convEnv(t, func(*testing.T) sluice.ConversationStore { return store }, envOptions{}, false)
	c := createConv(t, e, map[string]any{"title": "kept"})

	pg.Stop()
	wantDown(t, e, []route{
		{"GET", "/v1/conversations", nil},
		{"POST", "/v1/conversations", map[string]any{}},
		{"GET", "/v1/conversations/" + c.ID, nil},
		{"GET", "/v1/conversations/" + c.ID + "/items", nil},
		{"POST", "/v1/chat/completions", chatBody("hi", "conversation", c.ID)},
	})

	pg.Restart(t)
	testenv.Eventually(t, "conversations back", func() bool {
		resp := do(t, e, "GET", "/v1/conversations/"+c.ID, nil)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestASQLiteFileRemovedIsA503: a database file removed under the server
// refuses what would write into it (a new conversation, items added) with
// 503, and chats without a conversation stream on. A chat in a
// conversation, whose messages are stored off its request path, streams
// whole too; its messages, tried again, are then given up on and counted.
func TestASQLiteFileRemovedIsA503(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	obs := &notStored{given: make(chan struct{}, 1)}
	e := convEnv(t, func(*testing.T) sluice.ConversationStore { return store },
		envOptions{Conv: convo.Options{WriteRetry: time.Millisecond, Observer: obs}}, false)
	c := createConv(t, e, nil)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	wantDown(t, e, []route{
		{"POST", "/v1/conversations", map[string]any{}},
		{"POST", "/v1/conversations/" + c.ID + "/items", map[string]any{"items": []map[string]any{{"role": "user", "content": "x"}}}},
	})
	resp := do(t, e, "POST", "/v1/chat/completions", chatBody("hi", "conversation", c.ID))
	if resp.StatusCode != 200 || resp.Header.Get(api.HeaderMessageID) == "" {
		t.Fatalf("a chat in a conversation: status %d, headers %v", resp.StatusCode, resp.Header)
	}
	if txt, last := content(t, events(t, resp, -1)); txt == "" || last != "[DONE]" {
		t.Fatalf("a chat in a conversation: %q, last %q", txt, last)
	}
	select {
	case <-obs.given:
	case <-time.After(time.Minute):
		t.Fatal("the chat's messages, which cannot be stored, were never given up on")
	}
}

// notStored is a convo.Observer that tells when an answer was given up
// on.
type notStored struct{ given chan struct{} }

func (o *notStored) Wrote(string, time.Duration, error) {}
func (o *notStored) Batch()                             {}
func (o *notStored) Swept(int, error)                   {}
func (o *notStored) Recorded(status string) {
	if status == convo.RecordedNotStored {
		select {
		case o.given <- struct{}{}:
		default:
		}
	}
}
