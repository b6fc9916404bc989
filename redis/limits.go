package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// DefaultHoldTTL is LimitsOptions.HoldTTL's default.
const DefaultHoldTTL = 10 * time.Second

// LimitsOptions configure Limits.
type LimitsOptions struct {
	// HoldTTL is how long a place taken by Hold outlives the last renewal
	// by its node, which renews the places it holds every third of it: a
	// node that dies (killed, cut off, frozen) gives its places back
	// within HoldTTL.
	HoldTTL time.Duration
}

// Limits keeps the counts of per-key limits in Redis, for every node that
// shares it (it implements admit.Counter; cmd/sluice wires it): request
// budgets as token buckets, and places (a key's running generations) that
// lapse unless the node that took them renews them. Each is one key and
// one script run, so it works on a Redis Cluster as on one server, and
// Redis's own clock decides, so that the nodes' clocks need not agree.
// It is safe for concurrent use; Close stops its renewals.
type Limits struct {
	client rueidis.Client
	prefix string
	ttl    time.Duration

	mu   sync.Mutex
	held map[string]map[string]struct{} // members this node holds, by sorted set

	stop    chan struct{}
	stopped sync.WaitGroup
	closing sync.Once
}

// NewLimits returns the Limits of a node, on the connections of store s
// (it must outlive them: close the Limits first).
func NewLimits(s *Store, opts LimitsOptions) *Limits {
	l := &Limits{client: s.client, prefix: s.opts.Prefix + ":lim:", ttl: positive(opts.HoldTTL, DefaultHoldTTL),
		held: make(map[string]map[string]struct{}), stop: make(chan struct{})}
	l.stopped.Add(1)
	go l.renew()
	return l
}

// Close stops renewing the places this node holds; they lapse within
// HoldTTL unless released first.
func (l *Limits) Close() error {
	l.closing.Do(func() {
		close(l.stop)
		l.stopped.Wait()
	})
	return nil
}

// takeBucketScript is GCRA, the token bucket kept as one number: the time at
// which the bucket will be full again (its "theoretical arrival time"),
// in microseconds of Redis's clock. ARGV: the interval between two
// requests at the steady rate, and the burst, both in microseconds. It
// returns 0 when a request was taken, else the microseconds until one can
// be. The key expires when the bucket is full, which is the same as no key.
var takeBucketScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat + interval - now - tonumber(ARGV[2])
if wait > 0 then return math.ceil(wait) end
tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000))
return 0
`)

// Take takes one request from the bucket named who (admit.Counter): a
// burst of perMinute, refilled evenly at perMinute a minute.
func (l *Limits) Take(ctx context.Context, who string, perMinute int) (time.Duration, error) {
	interval := float64(time.Minute/time.Microsecond) / float64(perMinute)
	burst := interval * float64(perMinute)
	wait, err := takeBucketScript.Exec(ctx, l.client, []string{l.prefix + "r:" + who}, []string{
		strconv.FormatFloat(interval, 'f', 3, 64), strconv.FormatFloat(burst, 'f', 3, 64),
	}).AsInt64()
	if err != nil {
		return 0, unavailable(errors.Join(errors.New("redis: rate limit"), err))
	}
	return time.Duration(wait) * time.Microsecond, nil
}

// The places named who are a sorted set of the holders' random members,
// scored by when each lapses (milliseconds of Redis's clock). holdPlaceScript
// drops the lapsed ones, then adds one if fewer than ARGV[1] are left.
// ARGV: max, HoldTTL in milliseconds, the new member. It returns 1 when
// the place was taken.
var holdPlaceScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// renewPlacesScript pushes back the lapse of the members in ARGV[2:], those
// still there only (XX: a place released meanwhile stays released), by
// HoldTTL (ARGV[1], milliseconds).
var renewPlacesScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local lapse = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', lapse, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
`)

// releaseTimeout bounds giving a place back; one that fails lapses anyway.
const releaseTimeout = 2 * time.Second

// Hold takes one of at most max places named who (admit.Counter). The
// place is renewed every third of HoldTTL until released.
func (l *Limits) Hold(ctx context.Context, who string, max int) (func(), bool, error) {
	key := l.prefix + "h:" + who
	member := newMember()
	ok, err := holdPlaceScript.Exec(ctx, l.client, []string{key}, []string{
		strconv.Itoa(max), millis(l.ttl), member,
	}).AsInt64()
	if err != nil {
		return nil, false, unavailable(errors.Join(errors.New("redis: hold a place"), err))
	}
	if ok != 1 {
		return nil, false, nil
	}
	l.mu.Lock()
	if l.held[key] == nil {
		l.held[key] = make(map[string]struct{})
	}
	l.held[key][member] = struct{}{}
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.held[key], member)
			if len(l.held[key]) == 0 {
				delete(l.held, key)
			}
			l.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			_ = l.client.Do(ctx, l.client.B().Zrem().Key(key).Member(member).Build()).Error()
		})
	}, true, nil
}

// renew pushes back the lapse of this node's places, every third of
// HoldTTL, in one pipelined round of scripts.
func (l *Limits) renew() {
	defer l.stopped.Done()
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		execs := make([]rueidis.LuaExec, 0, len(l.held))
		for key, members := range l.held {
			args := make([]string, 0, len(members)+1)
			args = append(args, millis(l.ttl))
			for m := range members {
				args = append(args, m)
			}
			execs = append(execs, rueidis.LuaExec{Keys: []string{key}, Args: args})
		}
		l.mu.Unlock()
		if len(execs) == 0 {
			continue
		}
		// A renewal that fails (Redis down) is tried again at the next
		// tick; a place that lapsed meanwhile stays lapsed (XX).
		ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
		renewPlacesScript.ExecMulti(ctx, l.client, execs...)
		cancel()
	}
}

// newMember returns a random name for one place, unique across nodes.
func newMember() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
