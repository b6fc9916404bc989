package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluice-dev/sluice"
)

// Log is a handle on one incarnation of a log in Redis. Handles are cheap
// and hold no connection; any number of goroutines may use one at once.
// Once its incarnation is gone (expired, or replaced by a log created anew
// under its name), a handle's calls fail: ENOTFOUND, or for a ring
// EUNAVAILABLE as a forgotten topic is in the memory store.
type Log struct {
	s       *Store
	name    string
	owner   string
	epoch   string
	ring    bool
	writer  string   // the node that holds the log's lease; "" when it has none
	keys    []string // state hash, stream
	channel string   // this incarnation's pub/sub channel

	// created says that this handle created the log, as its writer
	// (sluice.LogOptions.Lost): every append to it goes through this
	// handle, so top is the log's top offset as far as Redis has
	// answered, and issued the top offset of the events this node has
	// handed its own readers, some of which Redis may not have answered
	// yet (see provisional.go). While this node holds the lease it
	// answers Last and its readers' looks without asking Redis (see
	// leases.writer).
	created bool
	maxLen  int
	top     atomic.Uint64
	issued  atomic.Uint64 // written under qmu

	qmu sync.Mutex
	q   queue // deferred appends (coalesce.go)
}

var _ sluice.Log = (*Log)(nil)

// open runs openScript and makes a handle of what it found or made.
func (s *Store) open(ctx context.Context, name, mode string, opts sluice.LogOptions) (*Log, error) {
	if opts.MaxLen <= 0 {
		opts.MaxLen = s.opts.MaxLen
	}
	base, keys := s.keysOf(name)
	ring := "0"
	if opts.Ring {
		ring = "1"
	}
	start := time.Now()
	epoch := newEpoch()
	res := openScript.Exec(ctx, s.client, keys, []string{
		mode, epoch, ring, strconv.Itoa(opts.MaxLen), opts.Owner,
		millis(s.opts.Retention), millis(s.opts.OpenTTL),
		s.node, millis(s.opts.Lease), rueidis.BinaryString(opts.Lost),
	})
	s.observe("open", start, res.Error())
	if rueidis.IsRedisNil(res.Error()) {
		return nil, sluice.Errorf(sluice.ENOTFOUND, "No stream %q: it never existed or has expired.", name)
	}
	if n, err := res.AsInt64(); err == nil && n == 0 {
		return nil, sluice.Errorf(sluice.ECONFLICT, "Log %q already exists.", name)
	}
	st, err := res.AsStrSlice()
	if err != nil || len(st) != 4 {
		return nil, unavailable(errors.Join(errors.New("redis: open "+name), err))
	}
	l := &Log{s: s, name: name, epoch: st[0], ring: st[1] == "1", owner: st[2], writer: st[3],
		keys: keys, channel: base + ":c:" + st[0]}
	if l.writer == s.node {
		l.created = l.epoch == epoch // else an earlier Create of this node's made it
		l.maxLen = opts.MaxLen
		s.leases.hold(l)
		if l.created {
			s.feeds.prime(l)
		}
	}
	return l, nil
}

// Name returns the name the log was created under.
func (l *Log) Name() string { return l.name }

// Owner returns who may read and stop the log; empty means anyone.
func (l *Log) Owner() string { return l.owner }

// Append adds ev in one script run: checked, stored, expiry set and
// published to the log's channel, after the events deferred to l before
// it (whether they were stored or not). An ending event ends this node's
// lease on the log, whether it is stored or not: a writer that cannot end
// its log leaves it to be ended as lost.
func (l *Log) Append(ctx context.Context, ev sluice.Event) (string, error) {
	if size := len(ev.Name) + len(ev.Data); size > l.s.opts.MaxEventBytes {
		return "", sluice.Errorf(sluice.ETOOLARGE, "An event of %d bytes is too large (at most %d).", size, l.s.opts.MaxEventBytes)
	}
	if ev.End != sluice.EndNone && l.writer == l.s.node {
		defer l.s.leases.drop(l)
	}
	if err := l.Flush(ctx); err != nil && (ctx.Err() != nil || l.unconfirmed()) {
		// An event this node's readers have may be lost: appending
		// after it would give its offset to another (see
		// provisional.go). The log is left to end as lost.
		return "", err
	}
	start := time.Now()
	res := appendScript.Exec(ctx, l.s.client, l.keys, l.appendArgs([]sluice.Event{ev}))
	l.s.observe("append", start, res.Error())
	top, _, err := l.appendResult(res)
	if err != nil {
		return "", err
	}
	l.s.feeds.appended(l, top, []sluice.Event{ev}, true)
	l.noteIssued(top)
	return formatID(top, l.epoch), nil
}

// appendArgs are appendScript's arguments to append evs.
func (l *Log) appendArgs(evs []sluice.Event) []string {
	args := make([]string, 0, 5+3*len(evs))
	args = append(args, l.epoch, l.channel, millis(l.s.opts.Retention), millis(l.s.opts.OpenTTL), l.s.node)
	for _, ev := range evs {
		args = append(args, rueidis.BinaryString(ev.Data), ev.Name, strconv.Itoa(int(ev.End)))
	}
	return args
}

// appendResult reads appendScript's answer: the offset of the last event
// appended and how many were; an error says why the rest were not.
func (l *Log) appendResult(r rueidis.RedisResult) (top uint64, n int, err error) {
	res, err := r.AsIntSlice()
	if err != nil || len(res) != 3 {
		return 0, 0, unavailable(errors.Join(errors.New("redis: append to "+l.name), err))
	}
	status, top, n := res[0], uint64(res[1]), int(res[2])
	if status != appendGone {
		l.noteTop(top)
	}
	switch status {
	case appendOK:
		return top, n, nil
	case appendGone:
		err = l.gone()
	case appendEnded:
		err = sluice.Errorf(sluice.ECONFLICT, "Stream %q has already ended.", l.name)
	case appendFull:
		full := sluice.Errorf(sluice.EFULL, "Stream %q is full.", l.name)
		full.Kind = "log_full"
		err = full
	case appendLost:
		l.s.leases.drop(l)
		err = &sluice.Error{Code: sluice.ECONFLICT, Kind: "node_lost",
			Message: "Stream " + strconv.Quote(l.name) + " was ended as lost: this server did not renew its lease in time.",
			Err:     errors.New("redis: the lease on " + l.name + " lapsed")}
	case appendNotWriter:
		err = sluice.Errorf(sluice.ECONFLICT, "Stream %q is written by another server.", l.name)
	default:
		err = unavailable(errors.New("redis: append to " + l.name + ": status " + strconv.FormatInt(status, 10)))
	}
	return top, n, err
}

// noteTop records top, an offset Redis answered that the log has reached.
func (l *Log) noteTop(top uint64) { atomicMax(&l.top, top) }

// noteIssued records that the events up to top have been handed to this
// node's readers.
func (l *Log) noteIssued(top uint64) { atomicMax(&l.issued, top) }

// head is the newest offset this node's readers may have been handed, by
// the writer's handle.
func (l *Log) head() uint64 { return max(l.issued.Load(), l.top.Load()) }

// unconfirmed reports whether this node has handed its readers events
// that Redis has not answered the append of.
func (l *Log) unconfirmed() bool { return l.issued.Load() > l.top.Load() }

func atomicMax(a *atomic.Uint64, v uint64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// Last returns the newest event's ID and whether the log has ended. For a
// log this node writes, it asks Redis nothing: the newest event is the
// newest that Redis has answered this node's append of (see
// leases.writer).
func (l *Log) Last(ctx context.Context) (string, sluice.End, error) {
	if w := l.s.leases.writer(l.name, l.epoch); w != nil {
		if top := w.head(); top > 0 {
			return formatID(top, l.epoch), sluice.EndNone, nil
		}
		return "", sluice.EndNone, nil
	}
	start := time.Now()
	res := lastScript.Exec(ctx, l.s.client, l.keys, []string{l.epoch})
	l.s.observe("last", start, res.Error())
	if rueidis.IsRedisNil(res.Error()) {
		return "", sluice.EndNone, l.gone()
	}
	st, err := res.AsIntSlice()
	if err != nil || len(st) != 2 {
		return "", sluice.EndNone, unavailable(errors.Join(errors.New("redis: last of "+l.name), err))
	}
	if st[0] == 0 {
		return "", sluice.End(st[1]), nil
	}
	return formatID(uint64(st[0]), l.epoch), sluice.End(st[1]), nil
}

// gone is the error of a handle whose incarnation Redis no longer holds.
func (l *Log) gone() error {
	if l.ring {
		return &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "topic_forgotten",
			Message: "The topic was forgotten after a time unused; subscribe or publish to it again.",
			Err:     errors.New("redis: " + l.name + " of epoch " + l.epoch + " is gone")}
	}
	return sluice.Errorf(sluice.ENOTFOUND, "Stream %q has expired.", l.name)
}

// newEpoch returns a new incarnation's epoch: 8 random base-36 digits, the
// first not 0. Random rather than a clock: nodes' clocks differ, and Redis
// restarted without persistence forgets everything but the time; two
// incarnations of one name get the same epoch once in 2.7e12.
func newEpoch() string {
	const lo, hi = 78364164096, 2821109907456 // 36^7, 36^8
	return strconv.FormatUint(lo+rand.Uint64N(hi-lo), 36)
}

// newNodeID returns a node's ID: 16 random base-36 digits, never met again.
func newNodeID() string { return newEpoch() + newEpoch() }

func millis(d interface{ Milliseconds() int64 }) string {
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}
