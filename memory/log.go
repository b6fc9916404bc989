package memory

import (
	"context"
	"encoding/binary"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"

	"github.com/sluice-dev/sluice"
)

// Log is an in-memory sluice.Log. Event IDs are "<seq>-<epoch>" (see
// id.go); clients must treat them as opaque.
//
// Events are stored without pointers, so that the garbage collector never
// scans them however many a retained log holds: each event's data is
// copied into a block of bytes (a block is only ever appended to, so readers
// keep slices of it without a lock), and its record says where, with its
// name as a small index. Appending allocates only when a block, or a chunk
// of IDs (id.go), fills.
//
// Most of a log's events look alike: every chunk of a chat completion
// repeats the same ~190 bytes of JSON around a token of a few. So a log
// keeps its first event of minShared to maxBase bytes as a base, and stores
// of each event only what lies between the start and the end it shares
// with the base: a chunk of 237 bytes costs 24 (its record and its token;
// TestATokenCostsTheBytesItDoesNotShare holds it under 50). Reading such an
// event puts it back together, in one allocation per Read; an event that
// shares little with the base is stored whole and read without a copy.
type Log struct {
	// used is the store's sweep count at a ring's last use (Store.touch),
	// which every read loads: it comes first, a cache line away from mu
	// and waiters, which readers write.
	used atomic.Int64

	name  string
	owner string
	epoch string // this incarnation's, in every ID (see id.go)
	ring  bool
	max   int
	// maxBytes bounds the data a ring keeps (0: no bound); s, when set, is
	// the store that counts every ring's bytes and forgets idle rings.
	maxBytes int64
	s        *Store
	onEnd    func(size int64) // told the log's size in bytes when it ends

	mu       sync.Mutex
	waiters  atomic.Int32 // readers waiting in Read, for the store's sweep; changed with mu held
	watchers atomic.Int32 // Notify listeners, likewise
	pages    [][]rec      // the events' records, recPage to a page
	pageBase uint64       // sequence of pages[0][0]
	first    uint64       // sequence of the oldest event kept
	next     uint64       // sequence the next append gets
	held     int64        // bytes of data of the events kept, as appended
	blocks   [][]byte     // blocks[i] is block number firstBlk+i; only the last has room
	firstBlk uint32
	names    []string // event names by index; names[0] is ""
	base     []byte   // the first event's data of minShared to maxBase bytes, which the others share bytes with
	ids      []byte   // where Append formats the IDs it hands out (see keepID)
	last     string   // the newest event's ID; "" before the first
	end      sluice.End
	wake     chan struct{} // closed and replaced by an append that has readers to wake
	waited   bool          // a reader is waiting on wake
	notify   []listener    // replaced, never changed in place: Append calls a copy
	nextID   int
	// counted says that a ring's held bytes count in s.ringBytes (until
	// the store forgets it). forgotten is set when the store has forgotten
	// an idle ring that someone still held: the log refuses appends and
	// reads from then on, rather than take events nobody will read.
	counted   bool
	forgotten bool
}

// rec is where one event's data is, and its name and end. The data is
// base[:pre], then the n bytes at off in the block, then the last suf bytes
// of base.
type rec struct {
	blk  uint32 // block number
	off  uint32 // offset of the stored bytes in the block
	n    uint32 // how many bytes are stored
	pre  uint16 // bytes shared with the start of base
	suf  uint16 // bytes shared with the end of base
	name uint8  // index into names
	end  sluice.End
}

// len is the length of the event's data.
func (r *rec) len() int { return int(r.pre) + int(r.n) + int(r.suf) }

// minShared is the fewest bytes an event must share with the base to be
// stored as a difference; below it, the copy on reading costs more than the
// bytes saved. maxBase is the largest event taken as the base, which a log
// keeps for as long as it lives, whatever it trims.
const (
	minShared = 24
	maxBase   = 4 << 10
)

// Blocks start small, so that a short log costs little, and double up to
// maxBlock; data larger than a block gets a block of its own.
const (
	minBlock = 512
	maxBlock = 16 << 10
	// maxNames is how many distinct event names one log can hold at once;
	// a log that is not a ring refuses events of further names, a ring
	// forgets the names of events it no longer keeps (see names.go).
	maxNames = 256
)

var _ sluice.Log = (*Log)(nil)

func newLog(name string, opts sluice.LogOptions) *Log {
	return &Log{name: name, owner: opts.Owner, epoch: nextEpoch(), ring: opts.Ring, max: opts.MaxLen,
		first: 1, next: 1, pageBase: 1, names: []string{""}, wake: make(chan struct{})}
}

// Name returns the log's name.
func (l *Log) Name() string { return l.name }

// Owner returns who may read and stop the log; empty means anyone.
func (l *Log) Owner() string { return l.owner }

// Append copies ev into the log and wakes every waiting reader. A ring
// first drops its oldest events to make room, by count and by bytes; the
// store may then trim other rings to keep all of them within its bound.
func (l *Log) Append(_ context.Context, ev sluice.Event) (string, error) {
	if uint64(len(ev.Data)) > math.MaxUint32 {
		return "", sluice.Errorf(sluice.ETOOLARGE, "An event of %d bytes is too large.", len(ev.Data))
	}
	l.mu.Lock()
	if l.forgotten {
		l.mu.Unlock()
		return "", errForgotten(l.name)
	}
	if l.end != sluice.EndNone {
		l.mu.Unlock()
		return "", sluice.Errorf(sluice.ECONFLICT, "Stream %q has already ended.", l.name)
	}
	if l.ring {
		for l.first < l.next && (int(l.next-l.first) >= l.max || (l.maxBytes > 0 && l.held+int64(len(ev.Data)) > l.maxBytes)) {
			l.trimOldest()
		}
	} else if int(l.next-l.first) >= l.max && ev.End == sluice.EndNone {
		l.mu.Unlock()
		full := sluice.Errorf(sluice.EFULL, "Stream %q is full (%d events).", l.name, l.max)
		full.Kind = "log_full"
		return "", full
	}
	name, ok := l.nameIndex(ev.Name)
	if !ok {
		l.mu.Unlock()
		return "", sluice.Errorf(sluice.ETOOLARGE, "Stream %q has too many event names (%d).", l.name, maxNames)
	}
	r := l.store(ev.Data)
	r.name, r.end = name, ev.End
	seq := l.next
	l.next++
	l.push(r)
	l.addHeld(int64(len(ev.Data)))
	l.end = ev.End
	id := l.keepID(seq)
	l.last = id
	if ev.End != sluice.EndNone {
		l.compact()
	}
	// A channel is made only when someone waits on the old one: a log with
	// no idle reader (the pump is busy writing) appends without allocating it.
	var wake chan struct{}
	if l.waited {
		wake, l.wake, l.waited = l.wake, make(chan struct{}), false
	}
	onEnd, notify := l.onEnd, l.notify
	var size int64
	if ev.End != sluice.EndNone {
		size = l.size()
	}
	l.mu.Unlock()

	if wake != nil {
		close(wake)
	}
	for _, n := range notify {
		n.fn()
	}
	if ev.End != sluice.EndNone && onEnd != nil {
		onEnd(size)
	}
	if l.ring && l.s != nil {
		l.s.touch(l)
		l.s.keepRingsWithin(l)
	}
	return id, nil
}

// addHeld counts n more bytes of data kept (fewer, when negative), in the
// log and, for a ring, in its store. l.mu must be held.
func (l *Log) addHeld(n int64) {
	l.held += n
	if l.counted {
		l.s.ringBytes.Add(n)
	}
}

// listener is a function Notify registered.
type listener struct {
	id int
	fn func()
}

// Notify has fn called after every append, in the appending goroutine,
// until stop is called (fn may still be running, or about to run, when stop
// returns). fn must not block: the hub uses it to write new events to
// connections at once, without waking a goroutine of its own. A ring with
// a listener is in use: its store does not forget it.
func (l *Log) Notify(fn func()) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	id := l.nextID
	l.notify = append(l.notify[:len(l.notify):len(l.notify)], listener{id, fn})
	l.watchers.Store(int32(len(l.notify)))
	return func() {
		l.mu.Lock()
		kept := make([]listener, 0, len(l.notify))
		for _, n := range l.notify {
			if n.id != id {
				kept = append(kept, n)
			}
		}
		l.notify = kept
		l.watchers.Store(int32(len(l.notify)))
		l.mu.Unlock()
		if l.ring && l.s != nil {
			l.s.touch(l) // its idle time starts now
		}
	}
}

// store copies what data does not share with the base into the last
// block, or a new one, and returns where.
func (l *Log) store(data []byte) rec {
	if l.base == nil && len(data) >= minShared && len(data) <= maxBase {
		l.base = append([]byte(nil), data...)
	}
	var r rec
	if pre := commonPrefix(l.base, data, math.MaxUint16); pre > 0 {
		suf := commonSuffix(l.base[pre:], data[pre:], math.MaxUint16)
		if pre+suf >= minShared {
			r.pre, r.suf = uint16(pre), uint16(suf)
			data = data[pre : len(data)-suf]
		}
	}
	last := len(l.blocks) - 1
	if last < 0 || cap(l.blocks[last])-len(l.blocks[last]) < len(data) {
		size := minBlock
		if last >= 0 {
			size = min(2*cap(l.blocks[last]), maxBlock)
		}
		if len(data) > size {
			size = len(data)
		}
		l.blocks = append(l.blocks, make([]byte, 0, size))
		last++
	}
	b := l.blocks[last]
	r.blk, r.off, r.n = l.firstBlk+uint32(last), uint32(len(b)), uint32(len(data))
	l.blocks[last] = append(b, data...)
	return r
}

// commonPrefix is the length of the longest common start of a and b, at
// most limit. It compares eight bytes at a time.
func commonPrefix(a, b []byte, limit int) int {
	n := min(len(a), len(b), limit)
	i := 0
	for ; i+8 <= n; i += 8 {
		if x := binary.LittleEndian.Uint64(a[i:]) ^ binary.LittleEndian.Uint64(b[i:]); x != 0 {
			return i + bits.TrailingZeros64(x)/8
		}
	}
	for ; i < n && a[i] == b[i]; i++ {
	}
	return i
}

// commonSuffix is the length of the longest common end of a and b, at most
// limit.
func commonSuffix(a, b []byte, limit int) int {
	n := min(len(a), len(b), limit)
	i := 0
	for ; i+8 <= n; i += 8 {
		x := binary.LittleEndian.Uint64(a[len(a)-i-8:]) ^ binary.LittleEndian.Uint64(b[len(b)-i-8:])
		if x != 0 {
			return i + bits.LeadingZeros64(x)/8
		}
	}
	for ; i < n && a[len(a)-1-i] == b[len(b)-1-i]; i++ {
	}
	return i
}

// Records are kept in pages of recPage, so that a long log grows without
// copying the records it has.
const recPage = 128

// rec returns the record of the event of sequence seq, which l holds.
func (l *Log) rec(seq uint64) *rec {
	i := seq - l.pageBase
	return &l.pages[i/recPage][i%recPage]
}

// push adds the record of the next event.
func (l *Log) push(r rec) {
	last := len(l.pages) - 1
	switch {
	case last < 0:
		l.pages = append(l.pages, make([]rec, 0, 8)) // a short log stays small
		last = 0
	case len(l.pages[last]) == recPage:
		l.pages = append(l.pages, make([]rec, 0, recPage))
		last++
	}
	l.pages[last] = append(l.pages[last], r)
}

// trimOldest drops the oldest event of a ring, which must have one, and
// the record page and blocks that no kept event uses any more. When it
// drops the last event kept, only the last block stays: the next event
// may fit in it.
func (l *Log) trimOldest() {
	l.addHeld(-int64(l.rec(l.first).len()))
	l.first++
	if l.first-l.pageBase == recPage {
		l.pages[0] = nil
		l.pages = l.pages[1:]
		l.pageBase += recPage
	}
	oldest := l.firstBlk + uint32(len(l.blocks)) - 1
	if l.first < l.next {
		oldest = l.rec(l.first).blk
	}
	for ; l.firstBlk < oldest; l.firstBlk++ {
		l.blocks[0] = nil
		l.blocks = l.blocks[1:]
	}
}

// compact gives an ended log's last block and record page back what they
// do not use, for the retention time the log is kept.
func (l *Log) compact() {
	if last := len(l.blocks) - 1; last >= 0 {
		if b := l.blocks[last]; cap(b)-len(b) > 256 {
			l.blocks[last] = append([]byte(nil), b...)
		}
	}
	if last := len(l.pages) - 1; last >= 0 {
		if p := l.pages[last]; cap(p)-len(p) > 16 {
			l.pages[last] = append([]rec(nil), p...)
		}
	}
}
