package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/internal/testenv"
)

var _ admit.Counter = (*Limits)(nil)

// nodeLimits returns the Limits of n nodes sharing one Redis at url (each
// on a store of its own, as nodes are), closed when t ends.
func nodeLimits(t *testing.T, url string, n int, o LimitsOptions) []*Limits {
	t.Helper()
	prefix := fmt.Sprintf("t%d", prefixes.Add(1))
	var out []*Limits
	for range n {
		l := NewLimits(newStore(t, url, Options{Prefix: prefix}), o)
		t.Cleanup(func() { l.Close() }) // before the store's (cleanups run last first)
		out = append(out, l)
	}
	return out
}

func take(t *testing.T, l *Limits, who string, perMinute int) time.Duration {
	t.Helper()
	wait, err := l.Take(context.Background(), who, perMinute)
	if err != nil {
		t.Fatal(err)
	}
	return wait
}

func hold(t *testing.T, l *Limits, who string, max int) (func(), bool) {
	t.Helper()
	release, ok, err := l.Hold(context.Background(), who, max)
	if err != nil {
		t.Fatal(err)
	}
	return release, ok
}

func TestABucketIsSharedByEveryNode(t *testing.T) {
	for _, url := range []string{testenv.StartRedis(t).URL, "redis://" + testenv.StartRedisCluster(t).Addrs[0]} {
		nodes := nodeLimits(t, url, 2, LimitsOptions{})
		const perMinute = 5
		for i := range perMinute {
			if wait := take(t, nodes[i%2], "ann", perMinute); wait != 0 {
				t.Fatalf("%s: request %d of %d refused, wait %v", url, i+1, perMinute, wait)
			}
		}
		for _, n := range nodes {
			wait := take(t, n, "ann", perMinute)
			if interval := time.Minute / perMinute; wait <= 0 || wait > interval {
				t.Fatalf("%s: request %d: wait %v, want within (0, %v]", url, perMinute+1, wait, interval)
			}
		}
		if wait := take(t, nodes[1], "bob", perMinute); wait != 0 {
			t.Fatalf("%s: another name was refused: wait %v", url, wait)
		}
	}
}

func TestABucketRefillsAtItsRate(t *testing.T) {
	nodes := nodeLimits(t, testenv.StartRedis(t).URL, 2, LimitsOptions{})
	// One every 3 s: the burst is taken well within one interval however
	// loaded the machine, so that nothing refills meanwhile.
	const perMinute = 20
	for i := range perMinute {
		if wait := take(t, nodes[i%2], "ann", perMinute); wait != 0 {
			t.Fatalf("request %d refused", i+1)
		}
	}
	wait := take(t, nodes[0], "ann", perMinute)
	if wait <= 0 {
		t.Fatal("a request past the burst was taken")
	}
	time.Sleep(wait) // the bucket says when it holds one again
	if w := take(t, nodes[1], "ann", perMinute); w != 0 {
		t.Fatalf("after the wait it said (%v), still refused for %v", wait, w)
	}
	if w := take(t, nodes[0], "ann", perMinute); w <= 0 {
		t.Fatal("the one request refilled was taken twice")
	}
}

func TestPlacesAreSharedByEveryNode(t *testing.T) {
	nodes := nodeLimits(t, testenv.StartRedis(t).URL, 2, LimitsOptions{})
	a, b := nodes[0], nodes[1]
	r1, ok1 := hold(t, a, "gen:ann", 2)
	r2, ok2 := hold(t, b, "gen:ann", 2)
	if !ok1 || !ok2 {
		t.Fatal("two places of two were refused")
	}
	for _, n := range []*Limits{a, b} {
		if _, ok := hold(t, n, "gen:ann", 2); ok {
			t.Fatal("a third place of two was taken")
		}
	}
	if _, ok := hold(t, b, "gen:bob", 2); !ok {
		t.Fatal("another name's place was refused")
	}
	r1()
	r1() // twice is harmless: it must not give back b's place
	if _, ok := hold(t, b, "gen:ann", 2); !ok {
		t.Fatal("a released place was not given back")
	}
	if _, ok := hold(t, a, "gen:ann", 2); ok {
		t.Fatal("releasing twice gave back two places")
	}
	r2()
}

func TestADeadNodesPlacesLapseAndALiveOnesStay(t *testing.T) {
	const ttl = time.Second
	nodes := nodeLimits(t, testenv.StartRedis(t).URL, 3, LimitsOptions{HoldTTL: ttl})
	live, dead, other := nodes[0], nodes[1], nodes[2]
	if _, ok := hold(t, live, "gen:ann", 1); !ok {
		t.Fatal("refused")
	}
	if _, ok := hold(t, dead, "gen:bob", 1); !ok {
		t.Fatal("refused")
	}
	dead.Close() // it renews no more, as a killed node
	died := time.Now()
	if _, ok := hold(t, other, "gen:bob", 1); ok {
		t.Fatal("a place lapsed as soon as its node stopped renewing it, before its TTL")
	}
	testenv.Eventually(t, "the dead node's place to lapse", func() bool {
		release, ok := hold(t, other, "gen:bob", 1)
		if ok {
			release()
		}
		return ok
	})
	// The live node's place has outlived its TTL several times over.
	time.Sleep(5*ttl - time.Since(died))
	if _, ok := hold(t, other, "gen:ann", 1); ok {
		t.Fatal("a place its node renews lapsed")
	}
}

func TestLimitsWithRedisDownRefuseAsUnavailable(t *testing.T) {
	r := testenv.StartRedis(t)
	l := nodeLimits(t, r.URL, 1, LimitsOptions{})[0]
	r.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.Take(ctx, "ann", 10); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("Take with Redis down: %v, want EUNAVAILABLE", err)
	}
	if _, _, err := l.Hold(ctx, "gen:ann", 1); sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
		t.Fatalf("Hold with Redis down: %v, want EUNAVAILABLE", err)
	}
}
