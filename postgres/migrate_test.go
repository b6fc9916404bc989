package postgres

import (
	"fmt"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// versions returns the versions schema_migrations records, in order.
func versions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.pool.Query(ctxFor(t), "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func allVersions(t *testing.T) []int {
	t.Helper()
	ms, err := migrations(schema)
	if err != nil {
		t.Fatal(err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.version)
	}
	return vs
}

func TestNodesOpeningAtOnceApplyEachMigrationOnce(t *testing.T) {
	url := testenv.StartPostgres(t)
	const nodes = 8
	stores := make([]*Store, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctxFor(t), url)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d of %d opening at once: %v", i, nodes, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if got, want := fmt.Sprint(versions(t, stores[0])), fmt.Sprint(allVersions(t)); got != want {
		t.Fatalf("schema_migrations holds %s, want each version once: %s", got, want)
	}
	// Every node works on the one schema.
	c, _, err := stores[1].CreateConversation(ctxFor(t), sluice.Conversation{Title: "shared"}, []sluice.Item{{Role: "user", Text: "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := stores[nodes-1].Conversation(ctxFor(t), c.ID); err != nil || got.Title != "shared" {
		t.Fatalf("another node reads %+v, %v", got, err)
	}
}

func TestReopeningAppliesNothingAgainAndANewerSchemaIsLeftAlone(t *testing.T) {
	url := testenv.StartPostgres(t)
	s := openStore(t, url)
	c, _, err := s.CreateConversation(ctxFor(t), sluice.Conversation{Title: "kept"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A newer Sluice has migrated the database further (a rolling upgrade).
	if _, err := s.pool.Exec(ctxFor(t), "INSERT INTO schema_migrations (version, name) VALUES (999999, '999999_from_the_future')"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStore(t, url)
	want := fmt.Sprint(append(allVersions(t), 999999))
	if got := fmt.Sprint(versions(t, s)); got != want {
		t.Fatalf("after reopening, schema_migrations holds %s, want %s", got, want)
	}
	if got, err := s.Conversation(ctxFor(t), c.ID); err != nil || got.Title != "kept" {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}
}

func TestAFailedMigrationLeavesTheSchemaAsItWas(t *testing.T) {
	url := testenv.StartPostgres(t)
	pool, err := pgxpool.New(ctxFor(t), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	files := fstest.MapFS{
		"0001_first.sql":  {Data: []byte("CREATE TABLE first (n int);")},
		"0002_broken.sql": {Data: []byte("CREATE TABLE second (n int); SELECT * FROM no_such_table;")},
	}
	err = migrate(ctxFor(t), pool, files)
	if err == nil {
		t.Fatal("a broken migration was applied")
	}
	if msg := sluice.ErrorMessage(err); msg != "Internal error." {
		t.Fatalf("the error shows users %q; the SQL and the server's words are for the logs", msg)
	}
	var n int
	if err := pool.QueryRow(ctxFor(t), `SELECT count(*) FROM pg_tables WHERE tablename IN ('first', 'second', 'schema_migrations')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("after a failed migration, %d of its tables are left (%v); want none: all or nothing", n, err)
	}
	// Mended, it applies.
	files["0002_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE second (n int);")}
	if err := migrate(ctxFor(t), pool, files); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctxFor(t), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("schema_migrations has %d rows (%v), want 2", n, err)
	}
}

func TestMigrationNamesMustCarryDistinctVersions(t *testing.T) {
	for name, files := range map[string]fstest.MapFS{
		"no version":      {"init.sql": {}},
		"a zero version":  {"0_init.sql": {}},
		"a version twice": {"0001_a.sql": {}, "1_b.sql": {}},
	} {
		if _, err := migrations(files); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if ms, err := migrations(schema); err != nil || len(ms) == 0 || ms[0].version != 1 {
		t.Fatalf("the embedded migrations: %v, %v", ms, err)
	}
}
