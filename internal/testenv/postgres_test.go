package testenv

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// queryInt runs a query answering one integer on the database at url.
func queryInt(t *testing.T, url, sql string) (int, error) {
	t.Helper()
	var n int
	err := withConn(url, func(ctx context.Context, conn *pgx.Conn) error {
		return conn.QueryRow(ctx, sql).Scan(&n)
	})
	return n, err
}

// mustExec runs statements (several, separated by semicolons) on url.
func mustExec(t *testing.T, url, sql string) {
	t.Helper()
	err := withConn(url, func(ctx context.Context, conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, sql)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func withConn(url string, f func(context.Context, *pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return f(ctx, conn)
}

func TestStartPostgresGivesEachTestADatabaseOfItsOwn(t *testing.T) {
	a, b := StartPostgres(t), StartPostgres(t)
	if a == b {
		t.Fatalf("two calls gave the same database %s", a)
	}
	mustExec(t, a, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
	if n, err := queryInt(t, a, "SELECT count(*) FROM t"); err != nil || n != 1 {
		t.Fatalf("count in the first database = %d, %v; want 1", n, err)
	}
	if _, err := queryInt(t, b, "SELECT count(*) FROM t"); err == nil {
		t.Fatal("a table made in one test's database is seen in another's")
	}
	enc, err := queryInt(t, a, "SELECT CASE WHEN pg_encoding_to_char(encoding) = 'UTF8' THEN 1 ELSE 0 END FROM pg_database WHERE datname = current_database()")
	if err != nil || enc != 1 {
		t.Fatalf("the database's encoding is not UTF8 (%d, %v)", enc, err)
	}
	// ILIKE folds more than ASCII: the stores' search relies on it.
	if n, err := queryInt(t, a, "SELECT CASE WHEN 'ÉTÉ' ILIKE '%été%' THEN 1 ELSE 0 END"); err != nil || n != 1 {
		t.Fatalf("'ÉTÉ' ILIKE '%%été%%' = %d, %v; want true", n, err)
	}
}

func TestPostgresServerStopsAtCleanup(t *testing.T) {
	var addr string
	t.Run("running", func(t *testing.T) {
		p := StartPostgresServer(t)
		addr = p.Addr
		if n, err := queryInt(t, p.NewDatabase(t), "SELECT 1"); err != nil || n != 1 {
			t.Fatalf("SELECT 1 = %d, %v", n, err)
		}
	})
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("PostgreSQL at %s still accepts connections after its test ended", addr)
	}
}

func TestPostgresRestartKeepsDataAndPort(t *testing.T) {
	p := StartPostgresServer(t)
	url := p.NewDatabase(t)
	mustExec(t, url, "CREATE TABLE t (n int); INSERT INTO t VALUES (7)")
	p.Stop()
	if _, err := queryInt(t, url, "SELECT 1"); err == nil {
		t.Fatal("a stopped server answered a query")
	}
	p.Restart(t)
	if n, err := queryInt(t, url, "SELECT n FROM t"); err != nil || n != 7 {
		t.Fatalf("after the restart, SELECT n = %d, %v; want 7 (same port, same data)", n, err)
	}
}

func TestPostgresIsFoundOffPathWhereDebianPutsIt(t *testing.T) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		t.Skip("no /usr/lib/postgresql/*/bin: not Debian's layout")
	}
	t.Setenv("PATH", "/usr/bin:/bin") // Debian puts neither initdb nor postgres there
	dir, err := postgresBinDir()
	if err != nil || !strings.HasPrefix(dir, "/usr/lib/postgresql/") {
		t.Fatalf("postgresBinDir() = %q, %v; want Debian's /usr/lib/postgresql/<version>/bin", dir, err)
	}
}
