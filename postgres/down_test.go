package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

func TestACallAfterTheDatabaseRestartedSucceeds(t *testing.T) {
	pg := testenv.StartPostgresServer(t)
	s := openStore(t, pg.NewDatabase(t))
	ctx := ctxFor(t)
	c, _, err := s.CreateConversation(ctx, sluice.Conversation{Title: "kept"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The pool's connections die with the server, and nothing calls until
	// it is back: the first call after finds them dead, and must not fail
	// for it (nor wait for a health check).
	pg.Restart(t)
	for i := range 3 {
		if got, err := s.Conversation(ctx, c.ID); err != nil || got.Title != "kept" {
			t.Fatalf("call %d after the restart: %+v, %v", i, got, err)
		}
	}
}

func TestACallOnConnectionsCutMomentsAgoSucceeds(t *testing.T) {
	url := testenv.StartPostgres(t)
	s := openStore(t, url)
	ctx := ctxFor(t)
	c, _, err := s.CreateConversation(ctx, sluice.Conversation{Title: "kept"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// An operator (or a failover, or a pooler restarting) cuts the store's
	// connections; the pool does not ping connections idle for less than
	// a second, so the next call finds one dead as it begins.
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var cut int
	// In the select list, not the WHERE clause, which PostgreSQL may
	// evaluate in any order (and so cut this connection too).
	if err := admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE cut) FROM (
		SELECT pg_terminate_backend(pid, 10000) AS cut FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t`).Scan(&cut); err != nil || cut == 0 {
		t.Fatalf("cut %d connections (%v); want the store's", cut, err)
	}
	if got, err := s.Conversation(ctx, c.ID); err != nil || got.Title != "kept" {
		t.Fatalf("a call after the connections were cut: %+v, %v", got, err)
	}
}

func TestErrorsOfTheDatabaseMapToCodes(t *testing.T) {
	pg := func(code string) error {
		return fmt.Errorf("query: %w", &pgconn.PgError{Code: code, Message: "SELECT secret"})
	}
	for _, tc := range []struct {
		name string
		err  error
		code string
		lost bool // the pool's connections are dropped
	}{
		{"a connection cut by an administrator", pg("57P01"), sluice.EUNAVAILABLE, true},
		{"a connection exception", pg("08006"), sluice.EUNAVAILABLE, true},
		{"a connection read that ended", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), sluice.EUNAVAILABLE, true},
		{"too many connections", pg("53300"), sluice.EUNAVAILABLE, false},
		{"a full disk", pg("53100"), sluice.EUNAVAILABLE, false},
		{"an I/O error", pg("58030"), sluice.EUNAVAILABLE, false},
		{"a deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), sluice.EUNAVAILABLE, false},
		{"a cancelled caller", fmt.Errorf("query: %w", context.Canceled), sluice.ECANCELLED, false},
		{"a syntax error (a bug)", pg("42601"), sluice.EINTERNAL, false},
		{"a unique violation (a bug)", pg("23505"), sluice.EINTERNAL, false},
		{"a statement cancelled", pg("57014"), sluice.EINTERNAL, false},
		{"the store's own error", invalid("x", "Bad."), sluice.EINVALID, false},
	} {
		err := dbError(context.Background(), "doing", tc.err)
		if sluice.ErrorCode(err) != tc.code || connLost(tc.err) != tc.lost {
			t.Errorf("%s: code %q, connection lost %v; want %q, %v", tc.name, sluice.ErrorCode(err), connLost(tc.err), tc.code, tc.lost)
		}
		if strings.Contains(sluice.ErrorMessage(err), "SELECT") {
			t.Errorf("%s: the message %q shows users the database's words", tc.name, sluice.ErrorMessage(err))
		}
	}
}
