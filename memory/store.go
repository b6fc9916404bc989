// Package memory keeps logs in this process's memory: the default store of a
// single Sluice node. Appends wake every waiting reader at once by closing a
// channel, so one event reaches many readers without a goroutine or a queue
// per reader; readers then copy what is new in one batch.
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
)

// Default limits, used where Options leaves a field zero.
const (
	DefaultMaxLen    = 65536
	DefaultRetention = 10 * time.Minute
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Retention is how long an ended log stays readable.
	Retention time.Duration
	// MaxLen is the default bound on a log's length.
	MaxLen int
}

// Store is an in-memory sluice.Store. It is safe for concurrent use. Close
// stops its expiry timers.
type Store struct {
	retention time.Duration
	maxLen    int

	mu     sync.Mutex
	logs   map[string]*Log
	closed bool
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
	return &Store{retention: opts.Retention, maxLen: opts.MaxLen, logs: make(map[string]*Log)}
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
	return s.createLocked(name, opts), nil
}

// Open returns the named log, creating it when create is set.
func (s *Store) Open(_ context.Context, name string, create bool, opts sluice.LogOptions) (sluice.Log, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.logs[name]; ok {
		return l, nil
	}
	if !create {
		return nil, sluice.Errorf(sluice.ENOTFOUND, "No stream %q: it never existed or has expired.", name)
	}
	return s.createLocked(name, opts), nil
}

// Len reports how many logs the store holds.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logs)
}

// Close forgets every log and stops expiry timers. Readers of logs still in
// use keep working; the store only stops handing them out.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, l := range s.logs {
		l.stopExpiry()
		delete(s.logs, name)
	}
	s.closed = true
	return nil
}

func (s *Store) createLocked(name string, opts sluice.LogOptions) *Log {
	if opts.MaxLen <= 0 {
		opts.MaxLen = s.maxLen
	}
	l := newLog(name, opts)
	l.onEnd = func() { s.expireAfter(l) }
	if !s.closed {
		s.logs[name] = l
	}
	return l
}

// expireAfter forgets l once the retention time has passed since it ended.
func (s *Store) expireAfter(l *Log) {
	t := time.AfterFunc(s.retention, func() {
		s.mu.Lock()
		if s.logs[l.name] == l {
			delete(s.logs, l.name)
		}
		s.mu.Unlock()
	})
	l.mu.Lock()
	l.expiry = t
	l.mu.Unlock()
}
