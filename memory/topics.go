package memory

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice"
)

// topics holds a Store's bounds on its ring logs (topics) and what it
// needs to keep them: anyone may create a topic by naming it, so without
// them a client could fill the node's memory with topics nobody reads.
//
// Time unused is measured in sweeps rather than read from the clock: a
// reader or appender only notes the number of the current sweep in the
// log (Store.touch, two atomic loads and seldom a store), since reading the
// clock costs more than a read of a few events. A sweep runs every period
// (a quarter of the retention, a second at most) while the store holds
// rings, marks the rings in use, and forgets those unused for more than
// idleSweeps sweeps: at least the retention time, at most one period more.
// The same counts order the rings from least to most recently used when
// all of them keep more than topicsMaxBytes.
type topics struct {
	maxTopics      int   // < 0: no bound
	topicMaxBytes  int64 // < 0: no bound
	topicsMaxBytes int64 // < 0: no bound

	rings     map[*Log]struct{} // under Store.mu
	ringBytes atomic.Int64      // data bytes all rings keep
	tick      atomic.Int64      // sweeps so far

	// Under Store.mu.
	period     time.Duration
	idleSweeps int64
	sweeper    *time.Timer // armed while sweeping is set
	sweeping   bool
	soonest    time.Duration // about when the next unused ring goes, as of the last sweep
	forgotten  int64         // rings forgotten for being unused

	shrinkMu sync.Mutex // one goroutine at a time trims rings for topicsMaxBytes
	trims    atomic.Int64
}

// init sets t up from opts, whose Retention is set.
func (t *topics) init(opts Options) {
	def := func(v, d int64) int64 {
		if v == 0 {
			return d
		}
		return v
	}
	t.maxTopics = int(def(int64(opts.MaxTopics), DefaultMaxTopics))
	t.topicMaxBytes = def(opts.TopicMaxBytes, DefaultTopicMaxBytes)
	t.topicsMaxBytes = def(opts.TopicsMaxBytes, DefaultTopicsMaxBytes)
	t.rings = make(map[*Log]struct{})
	t.soonest = opts.Retention
	// A second is fine enough for "unused for ten minutes", and sweeping
	// 10,000 topics a second costs well under a millisecond of it.
	t.period = max(min(opts.Retention/4, time.Second), time.Millisecond)
	t.idleSweeps = int64((opts.Retention + t.period - 1) / t.period)
}

// Topics reports how many rings the store holds and the bytes of data
// they keep, how many were forgotten for being unused, and how many times
// rings were trimmed to keep within Options.TopicsMaxBytes.
func (s *Store) Topics() (n int, bytes int64, forgotten, trims int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rings), s.ringBytes.Load(), s.forgotten, s.trims.Load()
}

// touch notes that l is in use now.
func (s *Store) touch(l *Log) {
	if t := s.tick.Load(); l.used.Load() != t {
		l.used.Store(t)
	}
}

// addRingLocked counts the new ring l, and sweeps while there are rings.
func (s *Store) addRingLocked(l *Log) {
	l.s = s
	l.counted = true
	if s.topicMaxBytes > 0 {
		l.maxBytes = s.topicMaxBytes
	}
	l.used.Store(s.tick.Load())
	s.rings[l] = struct{}{}
	if !s.sweeping {
		s.sweeping = true
		if s.sweeper == nil {
			s.sweeper = time.AfterFunc(s.period, s.sweep)
		} else {
			s.sweeper.Reset(s.period)
		}
	}
}

// tooManyTopics is the refusal to create a ring past MaxTopics. It is a
// node's capacity, not the client's fault, and it passes: unused topics
// are forgotten, so the client is asked to come back when one may be.
func (s *Store) tooManyTopics() error {
	return &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "too_many_topics",
		Message:    fmt.Sprintf("This server holds as many topics as it may (%d); try again later.", s.maxTopics),
		RetryAfter: max(s.soonest, time.Second)}
}

// sweep forgets the rings unused for the retention time.
func (s *Store) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.sweeping {
		return
	}
	now := s.tick.Add(1)
	soonest := s.retention
	had := len(s.rings)
	for l := range s.rings {
		if l.waiters.Load() > 0 || l.watchers.Load() > 0 {
			l.used.Store(now)
			continue
		}
		unused := now - l.used.Load()
		if unused > s.idleSweeps && s.dropLocked(l, true) {
			s.forgotten++
			continue
		}
		soonest = min(soonest, time.Duration(s.idleSweeps+1-unused)*s.period)
	}
	s.soonest = soonest
	if had-len(s.rings) >= 1024 && len(s.rings) < had/2 {
		// A Go map keeps the room it once needed: after a burst of
		// topics, copy the maps to give it back.
		s.logs = resized(s.logs)
		s.rings = resized(s.rings)
	}
	if len(s.rings) > 0 {
		s.sweeper.Reset(s.period)
	} else {
		s.sweeping = false
	}
}

// keepRingsWithin trims the least recently used rings, oldest events
// first, while all rings together keep more than TopicsMaxBytes; of the
// ring just appended to (keep), it keeps at least the newest event.
func (s *Store) keepRingsWithin(keep *Log) {
	if s.topicsMaxBytes < 0 || s.ringBytes.Load() <= s.topicsMaxBytes {
		return
	}
	s.shrinkMu.Lock()
	defer s.shrinkMu.Unlock()
	if s.ringBytes.Load() <= s.topicsMaxBytes {
		return // another append trimmed meanwhile
	}
	type ringUse struct {
		l    *Log
		used int64
	}
	s.mu.Lock()
	rings := make([]ringUse, 0, len(s.rings))
	for l := range s.rings {
		rings = append(rings, ringUse{l, l.used.Load()})
	}
	s.mu.Unlock()
	slices.SortFunc(rings, func(a, b ringUse) int {
		if (a.l == keep) != (b.l == keep) {
			return cmp.Compare(b2i(a.l == keep), b2i(b.l == keep)) // the ring appended to goes last
		}
		return cmp.Compare(a.used, b.used)
	})
	target := s.topicsMaxBytes - s.topicsMaxBytes/8
	for _, r := range rings {
		if s.ringBytes.Load() <= target {
			break
		}
		l := r.l
		l.mu.Lock()
		for l.counted && l.first < l.next && s.ringBytes.Load() > target && (l != keep || l.next-l.first > 1) {
			l.trimOldest()
		}
		l.mu.Unlock()
	}
	s.trims.Add(1)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// resized is a copy of m in a map of its size (maps.Clone copies the room
// too).
func resized[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
