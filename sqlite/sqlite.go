// Package sqlite keeps conversations in an SQLite database file: the
// default sluice.ConversationStore, embedded in the binary, so that a plain
// `sluice` keeps conversations across restarts with nothing to set up. It
// sits beside the log stores, off the token path: the service writes an
// answer here in batches while it streams.
//
// It uses modernc.org/sqlite, SQLite translated to Go: no cgo, so the
// binary still cross-compiles and runs anywhere from one `go build`, at
// the cost of some speed that batched conversation writes do not notice.
//
// One file in WAL mode, so that readers never wait for the writer. Every
// write goes through one connection, in transactions that take the write
// lock at BEGIN: writers in this process queue in database/sql rather than
// fail, and a transaction never has to upgrade a read lock to a write lock,
// the one case where SQLite answers SQLITE_BUSY at once whatever its
// busy_timeout. Reads use a small pool of read-only connections. Another
// process on the same file (a second `sluice` by mistake, a backup) is
// waited for up to busyTimeout before a write gives up as unavailable.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/convcheck"
)

// busyTimeout is how long a statement waits for another process's lock.
const busyTimeout = 10 * time.Second

// readers is how many read connections the store keeps.
const readers = 4

// foldFunc is the SQL name of convcheck.Fold, which search matches on:
// SQLite's own lower() folds only ASCII.
const foldFunc = "sluice_fold"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(foldFunc, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		s, _ := args[0].(string)
		return convcheck.Fold(s), nil
	})
}

// Store is a sluice.ConversationStore on an SQLite file. It is safe for
// concurrent use; Close it when done.
type Store struct {
	w, r *sql.DB
	// path and file are the database file as opened: SQLite goes on
	// writing to a file removed under it, into the void, so every write
	// first checks that the path still leads to it.
	path string
	file os.FileInfo

	closeOnce sync.Once
	closeErr  error
}

var _ sluice.ConversationStore = (*Store)(nil)

// Open opens the database at path, creating the file and its directory
// when they are missing, and brings its schema up to date. Its errors are
// EUNAVAILABLE (kind "database_unavailable"), and their Err says what went
// wrong with the path, for the operator.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, unavailable(fmt.Errorf("sqlite: database path %q: %w", path, err))
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, unavailable(fmt.Errorf("sqlite: database %s: creating its directory: %w", abs, err))
	}
	w, err := sql.Open("sqlite", dsn(abs, true))
	if err != nil {
		return nil, unavailable(fmt.Errorf("sqlite: %w", err))
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	s := &Store{w: w, path: abs}
	ms, err := loadMigrations(migrationFiles)
	if err == nil {
		err = openWaiting(ctx, func() error { _, err := migrate(ctx, w, ms); return err })
	}
	if err != nil {
		w.Close()
		return nil, unavailable(fmt.Errorf("sqlite: opening %s: %w", abs, err))
	}
	if s.file, err = os.Stat(abs); err != nil {
		w.Close()
		return nil, unavailable(fmt.Errorf("sqlite: opening %s: %w", abs, err))
	}
	s.r, err = sql.Open("sqlite", dsn(abs, false))
	if err != nil {
		w.Close()
		return nil, unavailable(fmt.Errorf("sqlite: %w", err))
	}
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)
	if err := openWaiting(ctx, func() error { return s.r.PingContext(ctx) }); err != nil {
		s.Close()
		return nil, unavailable(fmt.Errorf("sqlite: opening %s to read: %w", abs, err))
	}
	return s, nil
}

// openWaiting runs fn, the first use of a new connection, again while it
// fails with SQLITE_BUSY, for up to busyTimeout. Two processes that open a
// new file at once both switch it to WAL mode, and SQLite answers one of
// them SQLITE_BUSY at once rather than wait (waiting could deadlock); once
// the other is done, trying again succeeds. Nothing signals that moment,
// so the tries are spaced out.
func openWaiting(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(busyTimeout)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := fn()
		var se *sqlite.Error
		if !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// dsn is the data source name of the database file at abs, for the writer
// or for the readers.
func dsn(abs string, writer bool) string {
	// A file: URI with the path escaped, so that no character of a path
	// ('?', '#', '%') is taken for part of the options.
	name := "file:" + (&url.URL{Path: abs}).EscapedPath()
	// temp_store(MEMORY): the statement journals of big INSERTs stay off disk.
	opts := fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)", busyTimeout.Milliseconds())
	if !writer {
		return name + opts + "&_pragma=query_only(1)"
	}
	// synchronous(NORMAL) in WAL mode: a crash of the process loses nothing
	// committed, a power cut at most the last commits, never consistency;
	// FULL would add an fsync to every batch of every streaming answer.
	return name + opts + "&_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
}

// Close closes the database. Calls after the first do nothing and return
// its result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
	})
	return s.closeErr
}

// write runs fn in a write transaction, committed when fn returns nil.
// Errors of fn that are *sluice.Error pass as they are; others are the
// database's, mapped by dbError.
func (s *Store) write(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	if fi, err := os.Stat(s.path); err != nil || !os.SameFile(fi, s.file) {
		return unavailable(fmt.Errorf("sqlite: %s: the database file %s was removed or replaced since it was opened (%v)", what, s.path, err))
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return dbError(fmt.Errorf("sqlite: %s: %w", what, err))
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return wrap(ctx, what, err)
	}
	if err := tx.Commit(); err != nil {
		return wrap(ctx, what, err)
	}
	return nil
}

// read runs fn in a read transaction: what it reads is one snapshot.
func (s *Store) read(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return wrap(ctx, what, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return wrap(ctx, what, err)
	}
	return nil
}

func wrap(ctx context.Context, what string, err error) error {
	var e *sluice.Error
	if errors.As(err, &e) {
		return err
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return dbError(fmt.Errorf("sqlite: %s: %w", what, err))
}

// dbError maps a database error to what users are told: unavailable when
// the file cannot be read or written (full disk, removed file, a lock held
// too long, corruption), internal otherwise. The SQL error stays in Err,
// for logs.
func dbError(err error) error {
	var se *sqlite.Error
	switch {
	case errors.Is(err, context.Canceled):
		return &sluice.Error{Code: sluice.ECANCELLED, Message: "The request was cancelled.", Err: err}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, sql.ErrConnDone):
		return unavailable(err)
	case errors.As(err, &se):
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
			sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return unavailable(err)
		}
	}
	return &sluice.Error{Code: sluice.EINTERNAL, Message: "Internal error.", Err: err}
}

func unavailable(err error) error {
	return &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "database_unavailable",
		Message: "The conversation database is unavailable.", Err: err}
}

func notFound(what string) error {
	return &sluice.Error{Code: sluice.ENOTFOUND, Message: "No such " + what + "."}
}

// Times are kept as Unix nanoseconds, in UTC.
func fromNanos(ns int64) time.Time { return time.Unix(0, ns).UTC() }
