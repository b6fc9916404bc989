package api_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/postgres"
	"github.com/sluice-dev/sluice/sqlite"
)

// openSQLite opens a real SQLite conversation store in a temporary
// directory, closed when the test ends (after the server that uses it,
// which is started later and so stopped first).
func openSQLite(t *testing.T) sluice.ConversationStore {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "sluice.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgres opens a real PostgreSQL conversation store on a database
// of the test's own, closed when the test ends (after the server that uses
// it, which is started later and so stopped first).
func openPostgres(t *testing.T) sluice.ConversationStore {
	t.Helper()
	s, err := postgres.Open(context.Background(), testenv.StartPostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
