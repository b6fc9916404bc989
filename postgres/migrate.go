package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The schema's versions, one file each, named <version>_<what>.sql and
// applied in the order of their versions. A file once released is never
// changed: a change of schema is a new file.
//
//go:embed migrations/*.sql
var embedded embed.FS

// schema is the migrations directory of embedded.
var schema, _ = fs.Sub(embedded, "migrations")

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the migrations in files (*.sql at its top) in order
// of version.
func migrations(files fs.FS) ([]migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with a version number and _", base)
		}
		b, err := fs.ReadFile(files, n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrationLock is the key of the advisory lock that nodes starting at
// once take in turn, so that one applies the migrations and the others find
// them applied. (It is "sluice" in ASCII, a number no other program's
// lock is likely to be.)
const migrationLock = 0x736c75696365

// migrate applies the migrations that the database lacks, all in one
// transaction under an advisory lock: a node that fails halfway leaves the
// schema as it was, and nodes that start together apply each migration
// once. A database migrated by a newer Sluice (versions this one does not
// know) is left as it is: migrations only add, so an older node keeps
// working beside newer ones during a rolling upgrade.
func migrate(ctx context.Context, pool *pgxpool.Pool, files fs.FS) error {
	ms, err := migrations(files)
	if err != nil {
		return fmt.Errorf("postgres: %w", err) // a bug of the build, not of the database
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// The lock is the transaction's: it is released at commit or
		// rollback, and by the server if this node dies holding it.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return dbError(ctx, "locking for migrations", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return dbError(ctx, "creating schema_migrations", err)
		}
		rows, err := tx.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return dbError(ctx, "reading schema_migrations", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return dbError(ctx, "reading schema_migrations", err)
		}
		for _, m := range ms {
			if slices.Contains(applied, m.version) {
				continue
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return dbError(ctx, "applying migration "+m.name, err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
				return dbError(ctx, "recording migration "+m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return dbError(ctx, "migrating", err)
	}
	return nil
}
