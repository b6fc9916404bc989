package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/prom"
	"github.com/sluice-dev/sluice/redis"
)

// openStore returns the store that keeps the logs, as cfg chooses: Redis
// when --redis-url is set, so that several nodes serve each other's streams
// and topics, else this process's memory; either reports to metrics. With
// Redis it also returns the counter of the per-key limits, in the same
// Redis, so that a key's rate and generations are counted once for every
// node; with memory the counter is nil (admit counts in this process).
// Redis that cannot be reached is an error at once, not at the first
// request. close releases both; the caller calls it once nothing reads or
// writes a log any more.
func openStore(ctx context.Context, cfg Config, metrics *prom.Metrics) (sluice.Store, admit.Counter, func() error, error) {
	if cfg.RedisURL == "" {
		s := memory.New(memory.Options{Retention: cfg.Retention, RetainedBytes: int64(cfg.RetentionBytes), MaxLen: cfg.MaxLogLen,
			MaxTopics: cfg.MaxTopics, TopicMaxBytes: int64(cfg.TopicMaxBytes), TopicsMaxBytes: int64(cfg.TopicsMaxBytes)})
		metrics.WatchStore(func() (f prom.StoreFigures) {
			f.RetainedLogs, f.RetainedBytes, f.Evicted = s.Retained()
			f.Topics, f.TopicBytes, f.TopicsForgotten, f.TopicTrims = s.Topics()
			return f
		})
		return s, nil, s.Close, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := redis.New(ctx, redis.Options{URL: cfg.RedisURL, Retention: cfg.Retention, MaxLen: cfg.MaxLogLen, Observer: metrics.Redis()})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--redis-url (%s): %w", envName("redis-url"), err)
	}
	lim := redis.NewLimits(s, redis.LimitsOptions{})
	return s, lim, func() error { return errors.Join(lim.Close(), s.Close()) }, nil
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
