package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestMain fails the run if a goroutine outlives the tests (a pool's
// health check, a connection's watcher), and stops the PostgreSQL server
// that testenv.StartPostgres started.
func TestMain(m *testing.M) { testenv.RunWithoutLeaks(m) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openStore opens a store on url, closed when t ends.
func openStore(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(ctxFor(t), url)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if sluice.ErrorCode(err) != code {
		t.Fatalf("%s: got %v, want code %q", what, err, code)
	}
}
