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

// A transaction that lost a deadlock runs again from the same input: the
// items of its first try must not leak into the second.
func TestNewItemsLeavesItsInputForATryAgain(t *testing.T) {
	in := []sluice.Item{{Role: "user", Text: "a"}, {Role: "user", Text: "b"}}
	at := time.Now()
	first := newItems("conv_1", in, "msg_current", 7, at)
	second := newItems("conv_1", in, "msg_current", 7, at)
	for i, it := range in {
		if it.ID != "" || it.ParentID != "" || it.Seq != 0 {
			t.Fatalf("input item %d changed: %+v", i, it)
		}
	}
	if first[0].ID == second[0].ID || second[0].ParentID != "msg_current" || second[1].ParentID != second[0].ID || second[1].Seq != 9 {
		t.Fatalf("second try: %+v; want new IDs, the first under msg_current, the next under it, Seq 8 and 9", second)
	}
}
