package memory

import (
	"context"
	"encoding/binary"
	"io"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/sluice-dev/sluice"
)

// Log is an in-memory sluice.Log. Event IDs are decimal sequence numbers
// starting at 1; clients must treat them as opaque.
//
// Events are stored without pointers, so that the garbage collector never
// scans them however many a retained log holds: each event's data is
// copied into a block of bytes (a block is only ever appended to, so readers
// keep slices of it without a lock), and its record says where, with its
// name as a small index. Appending allocates only when a block fills.
//
// Most of a log's events look alike: every chunk of a chat completion
// repeats the same ~190 bytes of JSON around a token of a few. So a log
// keeps its first event of minShared bytes or more as a base, and stores of
// each event only what lies between the start and the end it shares with
// the base: a chunk of 237 bytes costs 24 (its record and its token;
// TestATokenCostsTheBytesItDoesNotShare holds it under 50). Reading such an
// event puts it back together, in one allocation per Read; an event that
// shares little with the base is stored whole and read without a copy.
type Log struct {
	name  string
	owner string
	ring  bool
	max   int
	onEnd func(size int64) // told the log's size in bytes when it ends

	mu       sync.Mutex
	pages    [][]rec  // the events' records, recPage to a page
	pageBase uint64   // sequence of pages[0][0]
	first    uint64   // sequence of the oldest event kept
	next     uint64   // sequence the next append gets
	blocks   [][]byte // blocks[i] is block number firstBlk+i; only the last has room
	firstBlk uint32
	names    []string // event names by index; names[0] is ""
	base     []byte   // the first event's data of minShared bytes or more, which the others share bytes with
	end      sluice.End
	wake     chan struct{} // closed and replaced by an append that has readers to wake
	waited   bool          // a reader is waiting on wake
	notify   []listener    // replaced, never changed in place: Append calls a copy
	nextID   int
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
// bytes saved.
const minShared = 24

// Blocks start small, so that a short log costs little, and double up to
// maxBlock; data larger than a block gets a block of its own.
const (
	minBlock = 512
	maxBlock = 16 << 10
	// maxNames is how many distinct event names one log can hold; events
	// of further names are refused.
	maxNames = 256
)

var _ sluice.Log = (*Log)(nil)

func newLog(name string, opts sluice.LogOptions) *Log {
	return &Log{name: name, owner: opts.Owner, ring: opts.Ring, max: opts.MaxLen, first: 1, next: 1, pageBase: 1,
		names: []string{""}, wake: make(chan struct{})}
}

// Name returns the log's name.
func (l *Log) Name() string { return l.name }

// Owner returns who may read and stop the log; empty means anyone.
func (l *Log) Owner() string { return l.owner }

// Append copies ev into the log and wakes every waiting reader.
func (l *Log) Append(_ context.Context, ev sluice.Event) (string, error) {
	if uint64(len(ev.Data)) > math.MaxUint32 {
		return "", sluice.Errorf(sluice.ETOOLARGE, "An event of %d bytes is too large.", len(ev.Data))
	}
	l.mu.Lock()
	if l.end != sluice.EndNone {
		l.mu.Unlock()
		return "", sluice.Errorf(sluice.ECONFLICT, "Stream %q has already ended.", l.name)
	}
	if int(l.next-l.first) >= l.max {
		if !l.ring && ev.End == sluice.EndNone {
			l.mu.Unlock()
			full := sluice.Errorf(sluice.EFULL, "Stream %q is full (%d events).", l.name, l.max)
			full.Kind = "log_full"
			return "", full
		}
		if l.ring {
			l.trimOldest()
		}
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
	l.end = ev.End
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
	return eventID(seq), nil
}

// listener is a function Notify registered.
type listener struct {
	id int
	fn func()
}

// Notify has fn called after every append, in the appending goroutine,
// until stop is called (fn may still be running, or about to run, when stop
// returns). fn must not block: the hub uses it to write new events to
// connections at once, without waking a goroutine of its own.
func (l *Log) Notify(fn func()) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextID++
	id := l.nextID
	l.notify = append(l.notify[:len(l.notify):len(l.notify)], listener{id, fn})
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		kept := make([]listener, 0, len(l.notify))
		for _, n := range l.notify {
			if n.id != id {
				kept = append(kept, n)
			}
		}
		l.notify = kept
	}
}

// store copies what data does not share with the base into the last
// block, or a new one, and returns where.
func (l *Log) store(data []byte) rec {
	if l.base == nil && len(data) >= minShared {
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

// trimOldest drops the oldest event of a ring, and the record page and
// blocks that no kept event uses any more.
func (l *Log) trimOldest() {
	l.first++
	if l.first-l.pageBase == recPage {
		l.pages[0] = nil
		l.pages = l.pages[1:]
		l.pageBase += recPage
	}
	if l.first == l.next {
		return
	}
	for oldest := l.rec(l.first).blk; l.firstBlk < oldest; l.firstBlk++ {
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

// nameIndex returns the index of name in l.names, adding it if new.
func (l *Log) nameIndex(name string) (uint8, bool) {
	for i, n := range l.names {
		if n == name {
			return uint8(i), true
		}
	}
	if len(l.names) >= maxNames {
		return 0, false
	}
	l.names = append(l.names, name)
	return uint8(len(l.names) - 1), true
}

// event returns the event of the given sequence, which l holds. An event
// stored as a difference from the base is put back together at the end of
// arena, which must have room for it.
func (l *Log) event(seq uint64, arena *[]byte) sluice.Event {
	r := l.rec(seq)
	b := l.blocks[r.blk-l.firstBlk]
	data := b[r.off : r.off+r.n : r.off+r.n]
	if r.pre+r.suf > 0 {
		start := len(*arena)
		a := append(*arena, l.base[:r.pre]...)
		a = append(a, data...)
		a = append(a, l.base[len(l.base)-int(r.suf):]...)
		*arena = a
		data = a[start:len(a):len(a)]
	}
	return sluice.Event{ID: eventID(seq), Name: l.names[r.name], Data: data, End: r.end}
}

// Read returns the events after the given ID, waiting for some if needed.
// Events that must be put back together get new memory of their own.
func (l *Log) Read(ctx context.Context, after string, buf []sluice.Event) ([]sluice.Event, error) {
	buf, _, err := l.ReadScratch(ctx, after, buf, nil)
	return buf, err
}

// ReadScratch is Read for a reader that is done with the events it read
// before it reads again, as the hub is once it has encoded them: events
// that must be put back together are put in scratch, grown as needed and
// returned for the next call, instead of in new memory. Their Data is
// valid until scratch is used again. With a nil scratch it is Read.
func (l *Log) ReadScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error) {
	seq, err := parseID(after)
	if err != nil {
		return nil, scratch, err
	}
	buf = buf[:0]
	for {
		l.mu.Lock()
		if seq >= l.next {
			l.mu.Unlock()
			return nil, scratch, badID(after)
		}
		start := seq + 1
		if start < l.first {
			if after != "" && cap(buf) > 1 {
				// The reader's place was trimmed away: say so in-band, under
				// the ID of the last event it missed, then go on.
				buf = append(buf, gapEvent(l.first-1, l.first-start))
			}
			start = l.first
		}
		if start < l.next {
			end := start + min(l.next-start, uint64(cap(buf)-len(buf)))
			// One allocation holds every event of the batch that must be
			// put back together.
			size := 0
			for s := start; s < end; s++ {
				if r := l.rec(s); r.pre+r.suf > 0 {
					size += r.len()
				}
			}
			arena := scratch[:0]
			if cap(arena) < size {
				arena = make([]byte, 0, size)
			}
			for s := start; s < end; s++ {
				buf = append(buf, l.event(s, &arena))
			}
			l.mu.Unlock()
			if cap(arena) > cap(scratch) {
				scratch = arena
			}
			return buf, scratch, nil
		}
		if l.end != sluice.EndNone {
			l.mu.Unlock()
			return buf, scratch, io.EOF
		}
		wake := l.wake
		l.waited = true
		l.mu.Unlock()

		select {
		case <-wake:
		case <-ctx.Done():
			return buf, scratch, ctx.Err()
		}
	}
}

// Last returns the newest event's ID and whether the log has ended.
func (l *Log) Last(context.Context) (string, sluice.End, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next == 1 {
		return "", l.end, nil
	}
	return eventID(l.next - 1), l.end, nil
}

// size is about how many bytes l holds: its blocks, records and names.
func (l *Log) size() int64 {
	n := int64(cap(l.pages)+cap(l.blocks))*24 + int64(cap(l.base)) + 256
	for _, p := range l.pages {
		n += int64(cap(p)) * int64(unsafe.Sizeof(rec{}))
	}
	for _, b := range l.blocks {
		n += int64(cap(b))
	}
	for _, name := range l.names {
		n += int64(len(name)) + 16
	}
	return n
}

// parseID turns an event ID into its sequence number; "" is 0, before the
// first event.
func parseID(id string) (uint64, error) {
	if id == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || (len(id) > 1 && id[0] == '0') {
		return 0, badID(id)
	}
	return n, nil
}

func badID(id string) error {
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return &sluice.Error{Code: sluice.EINVALID, Param: "last_event_id", Kind: "invalid_event_id",
		Message: "Event ID " + strconv.Quote(id) + " was not issued by this stream."}
}

// GapEvent is the name of the event a ring log hands a reader whose place
// was trimmed away before it read on: its data says how many events it
// missed, and its ID resumes after them.
const GapEvent = "sluice.gap"

func gapEvent(lastMissed, missed uint64) sluice.Event {
	n := strconv.FormatUint(missed, 10)
	return sluice.Event{ID: eventID(lastMissed), Name: GapEvent,
		Data: []byte(`{"missed":` + n + `,"message":"` + n + ` events were dropped from this topic before you read them."}`)}
}

// The IDs of the first events are made once and shared by every log, so
// that reading them allocates nothing: a generation rarely writes more
// than a few thousand events. Each run of idChunk IDs is made the first
// time one of them is asked for.
const (
	idChunk  = 1024
	idChunks = 64 // IDs below idChunk*idChunks are shared
)

var sharedIDs [idChunks]atomic.Pointer[[idChunk]string]

// eventID is the decimal ID of the event of sequence seq.
func eventID(seq uint64) string {
	if seq >= idChunk*idChunks {
		return strconv.FormatUint(seq, 10)
	}
	c := sharedIDs[seq/idChunk].Load()
	if c == nil {
		c = new([idChunk]string)
		base := seq / idChunk * idChunk
		for i := range c {
			c[i] = strconv.FormatUint(base+uint64(i), 10)
		}
		// Another goroutine may have made the same chunk meanwhile; either
		// copy serves.
		sharedIDs[seq/idChunk].CompareAndSwap(nil, c)
	}
	return c[seq%idChunk]
}
