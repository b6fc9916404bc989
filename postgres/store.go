// Package postgres keeps conversations in PostgreSQL: the
// sluice.ConversationStore for several nodes sharing one database (the
// single-node default is sqlite/). `sluice serve --database-url` opens it;
// the API above it reads and writes conversations, and a generation's
// writer stores its answer in batches, off the per-token path.
//
// Every method runs in one transaction. A write to a conversation takes its
// row lock first (and, when it changes a message too, the message's after
// it, always in that order, so that nodes writing at once never deadlock);
// the counters on that row check the bounds of conversation.go and assign
// Seq. Times come from the writing node's clock, truncated to PostgreSQL's
// microsecond, and a conversation's (or message's) UpdatedAt moves at least
// a microsecond with each change, so that "newest change first" is a strict
// order even for changes within one tick.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sluice-dev/sluice"
)

// Store is a sluice.ConversationStore on PostgreSQL. It is safe for
// concurrent use, by several goroutines and several nodes.
type Store struct {
	// pgx is the maintained PostgreSQL driver for Go, speaking the
	// protocol natively (no database/sql layer between: COPY for big
	// batches, jsonb and timestamptz without conversion code here).
	// pgxpool shares its connections among the many request goroutines
	// that call a store at once, and pings a connection idle for a while
	// before handing it out, which finds a server that restarted.
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ sluice.ConversationStore = (*Store)(nil)

// Open connects to the database at url (a PostgreSQL URL or key=value
// string, as --database-url takes it), applies the migrations it lacks and
// returns the store. The caller closes it. The URL's parameters tune the
// pool (pool_max_conns, by default 16 or the number of CPUs if more)
// and the connections (connect_timeout, here 5 s unless it is set).
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may hold the URL, password and all: it goes to
		// the log through Err, never to a user.
		return nil, &sluice.Error{Code: sluice.EINVALID, Message: "The database URL is not a valid PostgreSQL URL.", Err: err}
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgx's default (the larger of 4 and the CPUs) queues the first
		// writes of new chats behind the batches of running answers: at
		// 200 answers that put 160 ms on the first token (docs/benchmarks.md,
		// "Conversations"). 16 per node stays far inside PostgreSQL's 100
		// connections for a handful of nodes.
		cfg.MaxConns = max(defaultPoolConns, cfg.MaxConns)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without one, a database host that drops packets holds each
		// call for as long as the caller's context allows, or the
		// system's TCP timeout (minutes): a database that is down is
		// better told soon.
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, dbError(ctx, "connecting", err)
	}
	s := &Store{pool: pool, now: time.Now}
	if err := migrate(ctx, pool, schema); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the store's connections, waiting for those in use.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// clock returns the time now as the store keeps it: in UTC, to the
// microsecond.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// later returns now, or a microsecond after prev when now is not after it:
// UpdatedAt moves on with every change even within one clock tick, or when
// another node's clock is behind.
func later(now, prev time.Time) time.Time {
	if !now.After(prev) {
		return prev.Add(time.Microsecond)
	}
	return now
}

// inTx runs fn in a transaction and commits it. A transaction that lost a
// deadlock or a serialization race is run again, as is one whose BEGIN
// found its connection dead (a server that restarted): neither did
// anything. fn must leave nothing behind when it fails, as it may be run
// again.
func (s *Store) inTx(ctx context.Context, what string, fn func(pgx.Tx) error) error {
	const tries = 3
	for try := 1; ; try++ {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			if try < tries && connLost(err) && ctx.Err() == nil {
				// An open connection found dead: the server went away
				// since, and the others are dead too. Drop them all
				// rather than find each on its own, and try a new one.
				s.pool.Reset()
				continue
			}
			return dbError(ctx, what, err)
		}
		err = fn(tx)
		if err == nil {
			err = tx.Commit(ctx)
		} else {
			tx.Rollback(context.WithoutCancel(ctx))
		}
		if err == nil {
			return nil
		}
		if try < tries && retryable(err) {
			continue
		}
		if connLost(err) {
			s.pool.Reset()
		}
		return dbError(ctx, what, err)
	}
}

// readBatch sends the batch that batch makes, statements that only read,
// in one round trip, and runs their callbacks. A batch whose connection
// was found dead is made and sent again on a new one, as inTx does for
// BEGIN: a read did nothing. (A pgx.Batch once sent is not sent again: it
// keeps what it learned of its first connection.)
func (s *Store) readBatch(ctx context.Context, what string, batch func() *pgx.Batch) error {
	const tries = 3
	for try := 1; ; try++ {
		err := s.pool.SendBatch(ctx, batch()).Close()
		if err == nil {
			return nil
		}
		if connLost(err) {
			s.pool.Reset()
			if try < tries && ctx.Err() == nil {
				continue
			}
		}
		return dbError(ctx, what, err)
	}
}

// writeBatch sends the batch that batch makes in one round trip, as one
// implicit transaction (all of it or nothing), and runs its callbacks. It
// is made and sent again when it lost a deadlock or a serialization race,
// or found its connection dead before it was sent (in either case it did
// nothing), as inTx runs a transaction again.
func (s *Store) writeBatch(ctx context.Context, what string, batch func() *pgx.Batch) error {
	const tries = 3
	for try := 1; ; try++ {
		err := s.pool.SendBatch(ctx, batch()).Close()
		if err == nil {
			return nil
		}
		lost := connLost(err)
		if lost {
			s.pool.Reset()
		}
		if try < tries && ctx.Err() == nil && (retryable(err) || lost && pgconn.SafeToRetry(err)) {
			continue
		}
		return dbError(ctx, what, err)
	}
}

// retryable reports whether err is PostgreSQL's answer to a transaction
// that lost a race and may simply be run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// connLost reports whether err says that an open connection has died: the
// server closed it or went away. A timeout does not say so (a slow
// statement leaves the server and the other connections well), nor does a
// failure to connect (there was no connection).
func connLost(err error) bool {
	var (
		pe *pgconn.PgError
		ce *pgconn.ConnectError
		ne net.Error
	)
	switch {
	case errors.As(err, &ce), pgconn.Timeout(err), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &pe):
		// Class 08: connection exceptions; 57P01-57P03: the server is
		// shutting down (an administrator's command, a crash) or starting.
		return pe.Code[:2] == "08" || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	case errors.As(err, &ne):
		return !ne.Timeout()
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed)
}

// unavailable reports whether err says that the database cannot be
// reached or cannot work now, rather than that a statement was wrong.
func unavailable(err error) bool {
	var (
		pe  *pgconn.PgError
		ce  *pgconn.ConnectError
		ne  net.Error
		sle *sluice.Error
	)
	switch {
	case errors.As(err, &sle):
		return false
	case errors.As(err, &pe):
		// Beside a lost connection, class 53: insufficient resources (disk
		// full, too many connections); 57P04-57P05: the database is
		// dropped or the connection idled out; 58: system errors (I/O).
		class := pe.Code[:2]
		return connLost(err) || class == "53" || class == "58" || pe.Code == "57P04" || pe.Code == "57P05"
	case errors.As(err, &ce), errors.As(err, &ne):
		return true
	}
	return connLost(err) || pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded)
}

const (
	// retryAfter is what a caller of a database that is down is told to wait.
	retryAfter = 5 * time.Second
	// connectTimeout bounds a connection attempt when the URL does not.
	connectTimeout = 5 * time.Second
	// defaultPoolConns is the pool size when the URL names none.
	defaultPoolConns = 16
)

// dbError turns an error of the database into a *sluice.Error: its own
// errors (the store's checks) pass as they are; a database that cannot be
// reached is EUNAVAILABLE, kind "database_unavailable"; a caller that
// went away ECANCELLED; anything else EINTERNAL. The SQL and the server's
// words stay in Err, for the logs.
func dbError(ctx context.Context, what string, err error) error {
	var sle *sluice.Error
	if errors.As(err, &sle) {
		return err
	}
	err = fmt.Errorf("postgres: %s: %w", what, err)
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() == context.Canceled:
		return &sluice.Error{Code: sluice.ECANCELLED, Message: "The request was cancelled.", Err: err}
	case unavailable(err):
		return &sluice.Error{
			Code: sluice.EUNAVAILABLE, Kind: "database_unavailable",
			Message:    "The conversation database is unavailable; try again later.",
			RetryAfter: retryAfter, Err: err,
		}
	}
	return &sluice.Error{Code: sluice.EINTERNAL, Message: "Internal error.", Err: err}
}
