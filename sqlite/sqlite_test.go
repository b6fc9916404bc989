package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluice-dev/sluice"
)

// What SQLite alone does: its schema, its file, and how its failures reach
// users. The contract is in store_test.go.

func TestMigrationsAreAppliedOnceAndReopeningChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	versions := func() string {
		t.Helper()
		s := open(t, path)
		defer s.Close()
		rows, err := s.r.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var sb strings.Builder
		for rows.Next() {
			var v, at int64
			var name string
			if err := rows.Scan(&v, &name, &at); err != nil {
				t.Fatal(err)
			}
			sb.WriteString(strings.Join([]string{name, stamp(at)}, "@") + ";")
		}
		return sb.String()
	}
	first := versions()
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(first, ";") != len(ms) || !strings.HasPrefix(first, "0001_conversations@") {
		t.Fatalf("after the first open, schema_migrations holds %q; want each of %d migrations once", first, len(ms))
	}
	if again := versions(); again != first {
		t.Fatalf("a reopen changed schema_migrations from %q to %q", first, again)
	}
}

func stamp(ns int64) string { return fromNanos(ns).String() }

// rawDB opens the file at path as the store's writer does, without
// migrating it.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestAnOlderSchemaIsBroughtUpToDateKeepingItsData(t *testing.T) {
	ctx := t.Context()
	db := rawDB(t, filepath.Join(t.TempDir(), "old.db"))
	v1 := fstest.MapFS{"migrations/0001_notes.sql": {Data: []byte(`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);`)}}
	v2 := fstest.MapFS{
		"migrations/0001_notes.sql": v1["migrations/0001_notes.sql"],
		"migrations/0002_tags.sql": {Data: []byte(`ALTER TABLE notes ADD COLUMN tag TEXT NOT NULL DEFAULT 'old';
			CREATE INDEX notes_by_tag ON notes (tag);`)},
	}
	v3 := fstest.MapFS{
		"migrations/0001_notes.sql": v1["migrations/0001_notes.sql"],
		"migrations/0002_tags.sql":  v2["migrations/0002_tags.sql"],
		// Its first statement works and its second fails: neither may stay.
		"migrations/0003_broken.sql": {Data: []byte(`CREATE TABLE half (a); INSERT INTO nowhere VALUES (1);`)},
	}
	apply := func(fsys fstest.MapFS) (int, error) {
		t.Helper()
		ms, err := loadMigrations(fsys)
		if err != nil {
			t.Fatal(err)
		}
		return migrate(ctx, db, ms)
	}
	if n, err := apply(v1); n != 1 || err != nil {
		t.Fatalf("first migration: %d applied, %v", n, err)
	}
	if _, err := db.Exec(`INSERT INTO notes (body) VALUES ('kept')`); err != nil {
		t.Fatal(err)
	}
	if n, err := apply(v2); n != 1 || err != nil {
		t.Fatalf("the second on a file at version 1: %d applied, %v; want 1", n, err)
	}
	var body, tag string
	if err := db.QueryRow(`SELECT body, tag FROM notes`).Scan(&body, &tag); err != nil || body != "kept" || tag != "old" {
		t.Fatalf("the note after the migration: %q, %q, %v", body, tag, err)
	}
	if n, err := apply(v3); n != 0 || err == nil || !strings.Contains(err.Error(), "0003_broken") {
		t.Fatalf("a broken migration: %d applied, %v; want an error that names it", n, err)
	}
	var version, half int
	db.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&version)
	db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half'`).Scan(&half)
	if version != 2 || half != 0 {
		t.Fatalf("after a broken migration: version %d, table half %d; want 2 and none of its work", version, half)
	}
	if _, err := loadMigrations(fstest.MapFS{"migrations/0002_gap.sql": {}}); err == nil {
		t.Fatal("migrations that start at 2 were loaded")
	}
}

func TestAFileFromANewerSluiceIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	open(t, path).Close()
	db := rawDB(t, path)
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, '0099_future', 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := Open(t.Context(), path)
	if err == nil {
		s.Close()
		t.Fatal("a file at schema version 99 was opened")
	}
	if sluice.ErrorKind(err) != "database_unavailable" || !strings.Contains(err.Error(), "version 99, newer than this Sluice knows") {
		t.Fatalf("opening a newer file: %v", err)
	}
}

func TestOpenCreatesTheDirectoryAndTakesAnyPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir", "with?odd#chars%20", "sluice.db")
	s := open(t, path)
	defer s.Close()
	if _, _, err := s.CreateConversation(t.Context(), sluice.Conversation{Title: "x"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at the path asked for: %v", err)
	}
}

func TestAPathThatCannotHoldADatabaseIsAClearError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for what, path := range map[string]string{
		"under a file":           filepath.Join(file, "sluice.db"),
		"a directory":            dir,
		"a file that is not one": file,
	} {
		s, err := Open(t.Context(), path)
		if err == nil {
			s.Close()
			t.Fatalf("a database %s was opened", what)
		}
		if sluice.ErrorKind(err) != "database_unavailable" || !strings.Contains(err.Error(), filepath.Base(path)) {
			t.Fatalf("a database %s: %v; want database_unavailable naming the path", what, err)
		}
	}
}

// wantUnavailable fails t unless err is EUNAVAILABLE database_unavailable
// with a message that shows users nothing of SQL.
func wantUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if sluice.ErrorCode(err) != sluice.EUNAVAILABLE || sluice.ErrorKind(err) != "database_unavailable" {
		t.Fatalf("%s: %v; want unavailable, database_unavailable", what, err)
	}
	if msg := sluice.ErrorMessage(err); msg != "The conversation database is unavailable." {
		t.Fatalf("%s: users would read %q", what, msg)
	}
}

func TestARemovedDatabaseIsUnavailable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, filepath.Join(dir, "sluice.db"))
	defer s.Close()
	ctx := t.Context()
	c, _, err := s.CreateConversation(ctx, sluice.Conversation{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err = s.AddItems(ctx, c.ID, []sluice.Item{{Role: "user", Text: "lost?"}})
	wantUnavailable(t, "a write after the file was removed", err)
	_, _, err = s.CreateConversation(ctx, sluice.Conversation{}, nil)
	wantUnavailable(t, "a create after the file was removed", err)
}

func TestAFullDatabaseIsUnavailable(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "sluice.db"))
	defer s.Close()
	ctx := t.Context()
	c, _, err := s.CreateConversation(ctx, sluice.Conversation{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A cap on the file's pages is a full disk as SQLite sees it; the
	// writer is one connection, so the cap holds for every write.
	if _, err := s.w.Exec(`PRAGMA max_page_count = 64`); err != nil {
		t.Fatal(err)
	}
	_, err = s.AddItems(ctx, c.ID, []sluice.Item{{Role: "user", Text: strings.Repeat("x", 1<<20)}})
	wantUnavailable(t, "a write to a full database", err)
	var full *sluice.Error
	if !errors.As(err, &full) || !strings.Contains(full.Err.Error(), "full") {
		t.Fatalf("the logged cause %v does not say the database is full", err)
	}
	// What fits is still written.
	if _, err := s.AddItems(ctx, c.ID, []sluice.Item{{Role: "user", Text: "small"}}); err != nil {
		t.Fatalf("a small write to a nearly full database: %v", err)
	}
}

func TestTwoStoresOnOneFileNeverSeeBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	ctx := t.Context()
	// Two processes starting at once: both migrate, one after the other.
	stores := make([]*Store, 2)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() {
			s, err := Open(ctx, path)
			if err != nil {
				t.Errorf("open %d: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s == nil {
			t.FailNow()
		}
		defer s.Close()
	}
	c, _, err := stores[0].CreateConversation(ctx, sluice.Conversation{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const writes = 20
	for _, s := range stores {
		for range 4 {
			wg.Go(func() {
				for range writes {
					if _, err := s.AddItems(ctx, c.ID, []sluice.Item{{Role: "user", Text: "x"}}); err != nil {
						t.Errorf("a write beside another store: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	b, err := stores[1].Branch(ctx, c.ID, mustConv(t, stores[1], c.ID).CurrentID)
	if err != nil || len(b) != 2*4*writes {
		t.Fatalf("after concurrent writes from two stores, the branch has %d items, %v; want one chain of %d", len(b), err, 2*4*writes)
	}
}

func mustConv(t *testing.T, s *Store, id string) sluice.Conversation {
	t.Helper()
	c, err := s.Conversation(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestErrorsShowUsersNoSQL(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "sluice.db"))
	defer s.Close()
	// A statement that fails for a reason of its own is internal.
	err := s.write(context.Background(), "testing", func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO conversations (id) VALUES ('conv_x')`)
		return err
	})
	if sluice.ErrorCode(err) != sluice.EINTERNAL || sluice.ErrorMessage(err) != "Internal error." || !strings.Contains(err.Error(), "NOT NULL") {
		t.Fatalf("a failed statement: %v; want internal, with the cause kept for logs only", err)
	}
	// A cancelled caller is told so.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Conversation(ctx, "conv_x")
	if sluice.ErrorCode(err) != sluice.ECANCELLED {
		t.Fatalf("a cancelled read: %v", err)
	}
}

func TestALockHeldElsewhereIsWaitedForAndNeverBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	s := open(t, path)
	defer s.Close()
	c, _, err := s.CreateConversation(t.Context(), sluice.Conversation{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another process (a backup, say) holds the write lock.
	other, err := rawDB(t, path).Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	item := []sluice.Item{{Role: "user", Text: "x"}}

	// A caller out of time is told the database is unavailable, never
	// SQLite's "database is locked".
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err = s.AddItems(ctx, c.ID, item)
	cancel()
	wantUnavailable(t, "a write while another holds the lock past the caller's deadline", err)

	// A caller with time waits for the lock and writes.
	done := make(chan error, 1)
	go func() {
		_, err := s.AddItems(t.Context(), c.ID, item)
		done <- err
	}()
	// Nothing tells when the writer waits on the lock; a moment lets it
	// get there, and the write must succeed wherever it was.
	time.Sleep(100 * time.Millisecond)
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a write waiting for another's lock: %v", err)
	}
}
