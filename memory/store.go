// Package memory keeps logs in this process's memory: the default store of a
// single Sluice node. Appends wake every waiting reader at once by closing a
// channel, so one event reaches many readers without a goroutine or a queue
// per reader; readers then copy what is new in one batch.
//
// Everything it holds is bounded: ended logs by time and bytes (store.go),
// topics (ring logs) by number, by bytes each and together, and by time
// unused (topics.go).
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
)

// Default limits, used where Options leaves a field zero.
const (
	DefaultMaxLen         = 65536
	DefaultRetention      = 10 * time.Minute
	DefaultRetainedBytes  = 512 << 20
	DefaultMaxTopics      = 10_000
	DefaultTopicMaxBytes  = 8 << 20
	DefaultTopicsMaxBytes = 256 << 20
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Retention is how long an ended log stays readable.
	Retention time.Duration
	// RetainedBytes bounds the memory that ended logs hold while they wait
	// out their retention: past it, the logs that ended first are forgotten
	// early. Zero means DefaultRetainedBytes; a negative value, no bound.
	// A busy node ends logs faster than any fixed retention time can keep
	// them: 5,000 generations at 50 tokens a second end some 6 to 8 MB of
	// logs a second (arithmetic, from about 25 bytes a token; not measured).
	RetainedBytes int64
	// MaxLen is the default bound on a log's length.
	MaxLen int

	// Topics are the ring logs (sluice.LogOptions.Ring). One that nobody
	// appends to or reads for the retention time is forgotten; a reader
	// waiting in Read, or a Notify listener, keeps it in use.
	//
	// MaxTopics bounds how many the store holds: creating one more is
	// EUNAVAILABLE. TopicMaxBytes bounds the data one keeps: it drops its
	// oldest events to stay within it, but always keeps its newest.
	// TopicsMaxBytes bounds the data all of them keep together: past it,
	// the least recently used lose their oldest events (down to 7/8 of it,
	// so that a store at its bound does not sort its topics on every
	// append). Zero means the Default; a negative value, no bound.
	MaxTopics      int
	TopicMaxBytes  int64
	TopicsMaxBytes int64
}

// Store is an in-memory sluice.Store. It is safe for concurrent use. Close
// stops its expiry timer.
type Store struct {
	retention time.Duration
	maxBytes  int64 // < 0: no bound
	maxLen    int

	mu     sync.Mutex
	logs   map[string]*Log
	closed bool
	// ended holds the ended logs still kept, in the order they ended, which
	// is also the order they expire in: one timer, for the first, serves all.
	ended      []endedLog
	endedBytes int64
	expiry     *time.Timer // armed while ended is not empty
	evicted    int64       // logs forgotten early for the byte bound

	topics // the bounds on ring logs (topics.go)
}

// endedLog is a log waiting out its retention.
type endedLog struct {
	l    *Log
	at   time.Time // when it expires
	size int64
}

var _ sluice.Store = (*Store)(nil)

// New returns an empty store.
func New(opts Options) *Store {
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = DefaultMaxLen
	}
	if opts.RetainedBytes == 0 {
		opts.RetainedBytes = DefaultRetainedBytes
	}
	s := &Store{retention: opts.Retention, maxBytes: opts.RetainedBytes, maxLen: opts.MaxLen, logs: make(map[string]*Log)}
	s.topics.init(opts)
	return s
}

// Retention reports how long an ended log is kept.
func (s *Store) Retention() time.Duration { return s.retention }

// Create makes a new log; an existing name is ECONFLICT.
func (s *Store) Create(_ context.Context, name string, opts sluice.LogOptions) (sluice.Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.logs[name]; ok {
		return nil, sluice.Errorf(sluice.ECONFLICT, "Log %q already exists.", name)
	}
	return s.create(name, opts)
}

// Open returns the named log, creating it when create is set.
func (s *Store) Open(_ context.Context, name string, create bool, opts sluice.LogOptions) (sluice.Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.logs[name]; ok {
		// Under s.mu, which the sweep holds too: a topic opened now is not
		// forgotten before its opener uses it.
		l.touch()
		return l, nil
	}
	if !create {
		return nil, sluice.Errorf(sluice.ENOTFOUND, "No stream %q: it never existed or has expired.", name)
	}
	return s.create(name, opts)
}

// create is createLocked returning a sluice.Log: nil, not a nil *Log, on
// error. s.mu must be held.
func (s *Store) create(name string, opts sluice.LogOptions) (sluice.Log, error) {
	l, err := s.createLocked(name, opts)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Len reports how many logs the store holds.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logs)
}

// Retained reports the ended logs kept and the bytes they hold, and how
// many ended logs were forgotten before their retention time was up to keep
// within Options.RetainedBytes.
func (s *Store) Retained() (logs int, bytes int64, evicted int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ended), s.endedBytes, s.evicted
}

// Close forgets every log and stops the expiry timer and the topics'
// sweep. Readers of logs still in use keep working; the store only stops
// handing them out.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.logs)
	clear(s.rings)
	s.ended, s.endedBytes = nil, 0
	if s.expiry != nil {
		s.expiry.Stop()
	}
	if s.sweeper != nil {
		s.sweeper.Stop()
	}
	s.closed = true
	return nil
}

func (s *Store) createLocked(name string, opts sluice.LogOptions) (*Log, error) {
	if opts.MaxLen <= 0 {
		opts.MaxLen = s.maxLen
	}
	if opts.Ring && s.maxTopics >= 0 && len(s.rings) >= s.maxTopics {
		return nil, s.tooManyTopics()
	}
	l := newLog(name, opts)
	l.onEnd = func(size int64) { s.logEnded(l, size) }
	if s.closed {
		return l, nil
	}
	s.logs[name] = l
	if opts.Ring {
		s.addRingLocked(l)
	}
	return l, nil
}

// logEnded queues l to be forgotten once the retention time has passed, or
// sooner when the ended logs hold more than the byte bound.
func (s *Store) logEnded(l *Log, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.logs[l.name] != l {
		return
	}
	s.ended = append(s.ended, endedLog{l: l, at: time.Now().Add(s.retention), size: size})
	s.endedBytes += size
	for s.maxBytes >= 0 && s.endedBytes > s.maxBytes && len(s.ended) > 1 {
		s.forgetFirstLocked()
		s.evicted++
	}
	if s.expiry == nil {
		s.expiry = time.AfterFunc(s.retention, s.expire)
	} else if len(s.ended) == 1 {
		s.expiry.Reset(s.retention)
	}
}

// expire forgets the ended logs whose time is up, and sets the timer for
// the next one.
func (s *Store) expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for len(s.ended) > 0 && !s.ended[0].at.After(now) {
		s.forgetFirstLocked()
	}
	if len(s.ended) > 0 && !s.closed {
		s.expiry.Reset(s.ended[0].at.Sub(now))
	}
}

// forgetFirstLocked forgets the log that ended first.
func (s *Store) forgetFirstLocked() {
	e := s.ended[0]
	s.ended[0] = endedLog{}
	s.ended = s.ended[1:]
	s.endedBytes -= e.size
	s.dropLocked(e.l, false)
}

// dropLocked forgets l. A ring's data stops counting against the topics'
// bound. With unused, l is a ring forgotten for being unused: whoever
// still holds it may no longer use it (see Log.forgotten), and it is kept
// after all if a reader has begun to wait on it meanwhile; dropLocked
// reports whether it forgot l. The readers of an ended log read on to its
// end.
func (s *Store) dropLocked(l *Log, unused bool) bool {
	if _, ok := s.rings[l]; ok {
		l.mu.Lock()
		if unused && (l.waiters.Load() > 0 || len(l.notify) > 0) {
			l.mu.Unlock()
			return false
		}
		l.addHeld(-l.held)
		l.counted = false
		l.forgotten = unused
		l.mu.Unlock()
		delete(s.rings, l)
	}
	if s.logs[l.name] == l {
		delete(s.logs, l.name)
	}
	return true
}
