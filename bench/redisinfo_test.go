package bench

import (
	"context"
	"testing"
	"time"
)

// TestRedisWindowCountsWhatRedisRanInIt: a window counts the commands
// run after it starts, not those before, nor the bench's own questions,
// and scripts apart.
func TestRedisWindowCountsWhatRedisRanInIt(t *testing.T) {
	r := &runner{cfg: Config{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := r.startRedis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stopRedis(srv)
	do := func(args ...string) {
		t.Helper()
		if _, err := redisDo(srv.host, args...); err != nil {
			t.Fatal(err)
		}
	}
	do("SET", "before", "1") // not in the window
	w, err := startRedisWindow(srv)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		do("INCR", "n")
	}
	do("EVAL", "'redis.call(\"SET\", KEYS[1], \"x\") return 1'", "1", "k")
	l, err := w.end(4)
	if err != nil {
		t.Fatal(err)
	}
	// 3 INCR, 1 EVAL and the SET it ran.
	if l.Calls != 5 || l.Scripts != 1 || l.CallsPerUnit != 1.25 || l.ScriptsPerUnit != 0.25 {
		t.Fatalf("calls %d, scripts %d, per unit %.2f and %.2f; want 5, 1, 1.25, 0.25 (%+v)", l.Calls, l.Scripts, l.CallsPerUnit, l.ScriptsPerUnit, l.Commands)
	}
	if l.UsedMemory == 0 || l.RSS == 0 || l.Cores < 0 {
		t.Fatalf("memory %d, RSS %d, cores %.2f", l.UsedMemory, l.RSS, l.Cores)
	}
}
