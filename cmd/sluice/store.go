package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/prom"
	"github.com/sluice-dev/sluice/redis"
)

// backing is what the nodes keep their logs in, and what they share
// through it besides.
type backing struct {
	store sluice.Store
	// peers carry requests to stop generations between the nodes; nil on
	// memory.
	peers gen.Peers
	// counter counts the per-key limits for every node, so that a key's
	// rate and generations hold across them; nil on memory (admit counts
	// in this process).
	counter admit.Counter
	// close releases it all; the caller calls it once nothing reads or
	// writes a log any more.
	close func() error
}

// openStore opens what keeps the logs, as cfg chooses: Redis when
// --redis-url is set, so that several nodes serve each other's streams
// and topics, else this process's memory; either reports to metrics.
// Redis that cannot be reached is an error at once, not at the first
// request.
func openStore(ctx context.Context, cfg Config, metrics *prom.Metrics) (backing, error) {
	if cfg.RedisURL == "" {
		s := memory.New(memory.Options{Retention: cfg.Retention, RetainedBytes: int64(cfg.RetentionBytes), MaxLen: cfg.MaxLogLen,
			MaxTopics: cfg.MaxTopics, TopicMaxBytes: int64(cfg.TopicMaxBytes), TopicsMaxBytes: int64(cfg.TopicsMaxBytes)})
		metrics.WatchStore(func() (f prom.StoreFigures) {
			f.RetainedLogs, f.RetainedBytes, f.Evicted = s.Retained()
			f.Topics, f.TopicBytes, f.TopicsForgotten, f.TopicTrims = s.Topics()
			return f
		})
		return backing{store: s, close: s.Close}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	coalesce := cfg.RedisCoalesce
	if coalesce == 0 {
		coalesce = -1 // the flag's 0 is off; the store's is its default
	}
	s, err := redis.New(ctx, redis.Options{URL: cfg.RedisURL, Retention: cfg.Retention, MaxLen: cfg.MaxLogLen,
		Coalesce: coalesce, Lease: cfg.RedisLease, Observer: metrics.Redis()})
	if err != nil {
		return backing{}, fmt.Errorf("--redis-url (%s): %w", envName("redis-url"), err)
	}
	lim := redis.NewLimits(s, redis.LimitsOptions{})
	return backing{store: s, peers: s, counter: lim, close: func() error { return errors.Join(lim.Close(), s.Close()) }}, nil
}

// validRedisURL reports whether u has a scheme and shape the Redis store
// takes; the store checks the rest when it connects.
func validRedisURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil {
		return false
	}
	switch p.Scheme {
	case "redis", "rediss":
		return p.Host != ""
	case "unix":
		return p.Path != ""
	}
	return false
}
