package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The schema is a numbered series of migrations, migrations/NNNN_name.sql,
// each applied once, in order, in a transaction of its own, and recorded in
// schema_migrations. A database knows how far it has come, so that a newer
// Sluice brings an older file up to date at Open and an older Sluice refuses
// a file it does not understand rather than misread it.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one step of the schema.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the migrations of fsys's migrations folder, which
// must be numbered 1, 2, 3… without a gap.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: its name must start with a number and _", base)
		}
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(text)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d (no gaps, no repeats)", m.name, i+1)
		}
	}
	return ms, nil
}

// migrate applies to db the migrations it has not had, and returns how many
// it applied. db's transactions must take the write lock at BEGIN (the
// writer's _txlock=immediate): two processes opening one file at once then
// take turns, and the second finds the first's work done.
func migrate(ctx context.Context, db *sql.DB, ms []migration) (int, error) {
	applied := 0
	for {
		done, err := migrateOne(ctx, db, ms)
		if err != nil || done {
			return applied, err
		}
		applied++
	}
}

// migrateOne applies the next migration db lacks, or reports that it lacks
// none.
func migrateOne(ctx context.Context, db *sql.DB, ms []migration) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("beginning: %w", err)
	}
	defer tx.Rollback()
	// Within the transaction, which holds the write lock from its BEGIN: a
	// statement of its own would read the schema first and then want to
	// write it, and SQLite answers such an upgrade SQLITE_BUSY at once when
	// another process wrote in between, whatever the busy_timeout.
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return false, fmt.Errorf("creating schema_migrations: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return false, fmt.Errorf("reading the schema version: %w", err)
	}
	if have > len(ms) {
		return false, fmt.Errorf("the database's schema is version %d, newer than this Sluice knows (%d): run a newer Sluice", have, len(ms))
	}
	if have == len(ms) {
		return true, nil
	}
	m := ms[have]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return false, fmt.Errorf("recording migration %s: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("committing migration %s: %w", m.name, err)
	}
	return false, nil
}
