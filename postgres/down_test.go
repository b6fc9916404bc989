package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// wantUnavailable fails t unless err says the database is unavailable, in
// words fit for users (no SQL, no server address, no driver's words).
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var e *sluice.Error
	if !errors.As(err, &e) || e.Code != sluice.EUNAVAILABLE || e.Kind != "database_unavailable" || e.RetryAfter <= 0 {
		t.Fatalf("%s: got %#v, want EUNAVAILABLE of kind database_unavailable with a RetryAfter", what, err)
	}
	for _, leak := range []string{"SELECT", "INSERT", "UPDATE", "127.0.0.1", "postgres", "dial", "failed to connect"} {
		if strings.Contains(e.Message, leak) {
			t.Fatalf("%s: the message %q shows users %q", what, e.Message, leak)
		}
	}
}

func TestADatabaseThatGoesDownIsUnavailableUntilItComesBack(t *testing.T) {
	pg := testenv.StartPostgresServer(t)
	s := openStore(t, pg.NewDatabase(t))
	ctx := ctxFor(t)
	c, its, err := s.CreateConversation(ctx, sluice.Conversation{Owner: "o", Title: "before"},
		[]sluice.Item{{Role: "user", Text: "q"}, {Role: "assistant", Status: sluice.StatusInProgress, Text: "Hel"}})
	if err != nil {
		t.Fatal(err)
	}
	answer := its[1]

	pg.Stop()
	title := "during"
	for name, call := range map[string]func() error{
		"CreateConversation": func() error { _, _, err := s.CreateConversation(ctx, sluice.Conversation{}, nil); return err },
		"Conversation":       func() error { _, err := s.Conversation(ctx, c.ID); return err },
		"UpdateConversation": func() error {
			_, err := s.UpdateConversation(ctx, c.ID, sluice.ConversationPatch{Title: &title})
			return err
		},
		"DeleteConversation": func() error { return s.DeleteConversation(ctx, c.ID) },
		"Conversations":      func() error { _, _, err := s.Conversations(ctx, sluice.ConversationQuery{Owner: "o"}); return err },
		"AddItems":           func() error { _, err := s.AddItems(ctx, c.ID, []sluice.Item{{Role: "user", Text: "x"}}); return err },
		"Item":               func() error { _, err := s.Item(ctx, c.ID, answer.ID); return err },
		"Items":              func() error { _, _, err := s.Items(ctx, c.ID, sluice.ItemQuery{}); return err },
		"Branch":             func() error { _, err := s.Branch(ctx, c.ID, answer.ID); return err },
		"DeleteItem":         func() error { return s.DeleteItem(ctx, c.ID, answer.ID) },
		"UpdateMessage":      func() error { return s.UpdateMessage(ctx, answer.ID, sluice.MessageUpdate{Text: "Hello"}) },
		"Touch":              func() error { return s.Touch(ctx, answer.ID) },
		"SweepInterrupted":   func() error { _, err := s.SweepInterrupted(ctx, time.Now()); return err },
	} {
		wantUnavailable(t, name+" while the database is down", call())
	}

	pg.Restart(t)
	// Nothing that failed was written, and everything works again.
	if got, err := s.Conversation(ctx, c.ID); err != nil || got.Title != "before" {
		t.Fatalf("after the restart: %+v, %v", got, err)
	}
	if err := s.UpdateMessage(ctx, answer.ID, sluice.MessageUpdate{Text: "Hello", Status: sluice.StatusCompleted}); err != nil {
		t.Fatalf("update after the restart: %v", err)
	}
	if _, err := s.AddItems(ctx, c.ID, []sluice.Item{{Role: "user", Text: "again"}}); err != nil {
		t.Fatalf("add after the restart: %v", err)
	}
	items, _, err := s.Items(ctx, c.ID, sluice.ItemQuery{})
	if err != nil || len(items) != 3 || items[1].Text != "Hello" || items[1].Status != sluice.StatusCompleted {
		t.Fatalf("items after the restart: %+v, %v", items, err)
	}
}

func TestOpeningADatabaseThatIsDownIsUnavailable(t *testing.T) {
	pg := testenv.StartPostgresServer(t)
	url := pg.NewDatabase(t)
	pg.Stop()
	s, err := Open(ctxFor(t), url)
	if err == nil {
		s.Close()
		t.Fatal("opened a database that is down")
	}
	wantUnavailable(t, "open", err)
}

func TestABadURLIsInvalidAndItsPasswordIsNotShown(t *testing.T) {
	_, err := Open(ctxFor(t), "postgres://user:sekrit@127.0.0.1:notaport/db")
	wantCode(t, "open with a bad URL", err, sluice.EINVALID)
	if strings.Contains(sluice.ErrorMessage(err), "sekrit") {
		t.Fatalf("the message %q shows the password", sluice.ErrorMessage(err))
	}
}

func TestACancelledCallIsCancelledNotUnavailable(t *testing.T) {
	s := openStore(t, testenv.StartPostgres(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Conversation(ctx, "conv_00000000000000000000000000000000")
	wantCode(t, "a call whose context was cancelled", err, sluice.ECANCELLED)
}
