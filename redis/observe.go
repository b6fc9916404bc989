package redis

import (
	"context"
	"errors"
	"time"

	"github.com/redis/rueidis"
)

// Observer is told of the store's round trips to Redis, for metrics. Its
// method is called for every append and read, so it must be safe for
// concurrent use and must neither block, lock nor allocate.
type Observer interface {
	// Command is told of one round trip (the commands: "open", "append",
	// "last", "read", "touch", and "lease", one pipelined round renewing
	// or looking at leases, and "stop") that took d; err is set when Redis failed
	// it or could not be reached ("no such log" answers are not errors).
	Command(name string, d time.Duration, err error)
}

type nopObserver struct{}

func (nopObserver) Command(string, time.Duration, error) {}

// observe tells the observer of the command name, begun at start, that
// ended with err.
func (s *Store) observe(name string, start time.Time, err error) {
	if rueidis.IsRedisNil(err) || errors.Is(err, context.Canceled) {
		err = nil
	}
	s.opts.Observer.Command(name, time.Since(start), err)
}

// Ping asks Redis whether it answers (for readiness checks).
func (s *Store) Ping(ctx context.Context) error {
	return s.client.Do(ctx, s.client.B().Ping().Build()).Error()
}
