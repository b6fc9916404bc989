package api_test

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/postgres"
)

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
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/conversations", nil},
		{"POST", "/v1/conversations", map[string]any{}},
		{"GET", "/v1/conversations/" + c.ID, nil},
		{"GET", "/v1/conversations/" + c.ID + "/items", nil},
		{"POST", "/v1/chat/completions", chatBody("hi", "conversation", c.ID)},
	} {
		resp := do(t, e, r.method, r.path, r.body)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: no Retry-After", r.method, r.path)
		}
		wantStatus(t, resp, 503, "database_unavailable")
	}
	if txt, last := content(t, events(t, do(t, e, "POST", "/v1/chat/completions", chatBody("hi")), -1)); txt == "" || last != "[DONE]" {
		t.Fatalf("a chat without a conversation: %q, last %q", txt, last)
	}

	pg.Restart(t)
	testenv.Eventually(t, "conversations back", func() bool {
		resp := do(t, e, "GET", "/v1/conversations/"+c.ID, nil)
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}
