package admit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Counter keeps the counts that the per-key limits are checked against:
// request budgets (Limits.RequestsPerMinute) and running generations
// (Limits.GenerationsPerKey). The Gate's own, used when Config.Counter is
// nil, counts in this process, so each node counts alone; a shared one
// (cmd/sluice wires redis.Limits when --redis-url is set) counts for every
// node that uses it, so that a key's limits hold across a cluster.
// Implementations are safe for concurrent use.
type Counter interface {
	// Take takes one request from the token bucket named who, which holds
	// perMinute requests and is refilled evenly at perMinute a minute. When
	// the bucket is empty it takes nothing and returns how long until it
	// holds one again (wait > 0).
	Take(ctx context.Context, who string, perMinute int) (wait time.Duration, err error)
	// Hold takes one of at most max places named who, or reports !ok when
	// all are taken. release gives the place back; calling it more than
	// once is harmless. A shared counter keeps a place only while the node
	// that holds it lives: a dead node's places lapse by themselves.
	Hold(ctx context.Context, who string, max int) (release func(), ok bool, err error)
}

// localCounter is the Counter of one process.
type localCounter struct {
	mu       sync.Mutex
	buckets  map[string]*rate.Limiter // token buckets by name
	held     map[string]int           // places taken, by name
	lastTrim time.Time
}

func newLocalCounter() *localCounter {
	return &localCounter{buckets: make(map[string]*rate.Limiter), held: make(map[string]int)}
}

// Take uses golang.org/x/time/rate, the Go team's token bucket: a burst of
// a minute's worth, refilled evenly.
func (c *localCounter) Take(_ context.Context, who string, perMinute int) (time.Duration, error) {
	now := time.Now()
	c.mu.Lock()
	b := c.buckets[who]
	if b == nil {
		c.trimBuckets(now)
		b = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
		c.buckets[who] = b
	}
	c.mu.Unlock()
	if b.AllowN(now, 1) {
		return 0, nil
	}
	wait := time.Duration(float64(time.Minute) / float64(perMinute))
	if r := b.ReserveN(now, 1); r.OK() {
		wait = r.DelayFrom(now)
		r.CancelAt(now)
	}
	return max(wait, time.Nanosecond), nil
}

// trimBuckets forgets full buckets (clients quiet for a minute), so that
// many client addresses cannot grow the map without bound.
func (c *localCounter) trimBuckets(now time.Time) {
	if len(c.buckets) < 1024 || now.Sub(c.lastTrim) < time.Minute {
		return
	}
	c.lastTrim = now
	for who, b := range c.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(c.buckets, who)
		}
	}
}

func (c *localCounter) Hold(_ context.Context, who string, max int) (func(), bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held[who] >= max {
		return nil, false, nil
	}
	c.held[who]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.held[who]--; c.held[who] <= 0 {
				delete(c.held, who)
			}
		})
	}, true, nil
}
