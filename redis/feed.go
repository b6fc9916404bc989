package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/eventid"
)

// A feed is a node's one subscription to a log's channel, shared by all of
// the node's readers that wait on the log, however many: Redis sends each
// event to each node once, and the node hands it to its readers in
// process. It keeps the newest events it received (its window), so that a
// follower that reads again after each batch, as every reader does, gets
// them without a round trip; a reader outside the window reads from the
// stream instead.
//
// The window is exact, not a guess: the log's events are published in
// offset order, by the script that appends them, and a subscription
// delivers them in that order, so a window that grew one offset at a time
// holds every event from its first to its last. When the connection breaks
// the subscription ends (the client does not retry), and its readers look
// again through a new one.
type feed struct {
	fs      *feeds
	log     *Log // the handle that made it, for the keys and epoch
	channel string
	cancel  context.CancelFunc
	ready   chan struct{} // closed when Redis has confirmed the subscription
	done    chan struct{} // closed when the subscription has ended

	mu       sync.Mutex
	wake     chan struct{} // closed and replaced by each event received
	win      []sluice.Event
	winFirst uint64 // offset of win[0]
	winBytes int
	waiting  int       // readers in Read now
	used     bool      // a reader came since the janitor last looked
	left     time.Time // when waiting last dropped to 0
	touched  time.Time // under feeds.mu: when the janitor last pushed back a ring's expiry
	stopping bool      // under feeds.mu: no reader may join it any more
	err      error     // why it ended, once done is closed
}

// Bounds on a window: a reader behind it reads from the stream. A node
// keeps one window for each log its readers follow (thousands, with as
// many generations running), and a follower is rarely more than a batch
// behind: the bounds are a few batches of the hub's 64 events.
const (
	windowEvents = 256
	windowBytes  = 64 << 10
)

// feeds are a Store's feeds by channel.
type feeds struct {
	s  *Store
	mu sync.Mutex
	m  map[string]*feed
	wg sync.WaitGroup
}

func (fs *feeds) init(s *Store) {
	fs.s = s
	fs.m = make(map[string]*feed)
}

// acquire returns l's feed, subscribed, counting the caller as a waiting
// reader until it calls release. With early, it returns the feed as soon
// as its subscription is asked for, without waiting for Redis to confirm
// it: a reader of a log this node writes is woken by the node's own
// appends (see appended), and looks at Redis once the subscription is
// confirmed for anything else (see Log.read).
func (fs *feeds) acquire(ctx context.Context, l *Log, early bool) (*feed, error) {
	for {
		fs.mu.Lock()
		f := fs.m[l.channel]
		if f != nil && f.stopping {
			// Its unsubscribe must be done before another subscribe on
			// the same connection, or the server's confirmation of it
			// would end the new one.
			fs.mu.Unlock()
			select {
			case <-f.done:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if f == nil {
			select {
			case <-fs.s.stop:
				fs.mu.Unlock()
				return nil, sluice.Errorf(sluice.EUNAVAILABLE, "The log store is closed.")
			default:
			}
			f = fs.start(l)
		}
		f.mu.Lock()
		f.waiting++
		f.used = true
		f.mu.Unlock()
		fs.mu.Unlock()
		if early {
			return f, nil
		}
		select {
		case <-f.ready:
			return f, nil
		case <-f.done:
			f.release()
			return nil, unavailable(f.err)
		case <-ctx.Done():
			f.release()
			return nil, ctx.Err()
		}
	}
}

// peek returns l's feed if this node is subscribed to it, without
// counting the caller as a reader, or nil. With writes (this node writes
// l: see leases.writer), a feed whose subscription Redis has not yet
// confirmed will do: its window is exact all the same (see appended).
func (fs *feeds) peek(l *Log, writes bool) *feed {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.m[l.channel]
	if f == nil || f.stopping {
		return nil
	}
	select {
	case <-f.ready:
		return f
	default:
		if writes {
			return f
		}
		return nil
	}
}

// prime starts the feed of l, a log this node has just created and
// writes, ahead of its readers, unless it has one: the log's events then
// go into the window from the first (see appended), for the readers that
// come a moment later (the request that started the generation, which
// would otherwise find its first events only in Redis, a round trip or
// two later). A feed that no reader comes to ends after the linger time,
// as any does.
func (fs *feeds) prime(l *Log) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m[l.channel] != nil {
		return
	}
	select {
	case <-fs.s.stop:
		return
	default:
	}
	f := fs.start(l)
	f.mu.Lock()
	f.left = time.Now()
	f.mu.Unlock()
}

// start subscribes to l's channel in a goroutine of its own. fs.mu must be
// held.
func (fs *feeds) start(l *Log) *feed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &feed{fs: fs, log: l, channel: l.channel, cancel: cancel,
		ready: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{})}
	fs.m[l.channel] = f
	fs.wg.Add(1)
	go f.run(ctx)
	return f
}

// run holds the subscription until it is cancelled or breaks.
func (f *feed) run(ctx context.Context) {
	defer f.fs.wg.Done()
	client := f.fs.s.client
	confirmed := false
	ctx = rueidis.WithOnSubscriptionHook(ctx, func(s rueidis.PubSubSubscription) {
		if s.Kind != "ssubscribe" || s.Channel != f.channel {
			return
		}
		if !confirmed {
			confirmed = true
			close(f.ready)
		}
	})
	// Receive leaves the channel subscribed on the shared connection when
	// it returns; unsubscribe there, or the node would go on receiving
	// the log's events for nobody.
	ctx = rueidis.WithOnReceiveReturnHook(ctx, func(err error, c rueidis.CommandClient) error {
		uctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c.Do(uctx, c.B().Sunsubscribe().Channel(f.channel).Build())
		return err
	})
	err := client.Receive(ctx, client.B().Ssubscribe().Channel(f.channel).Build(), f.receive)
	if err == nil || errors.Is(err, context.Canceled) {
		err = errors.New("redis: subscription to " + f.channel + " ended")
	}

	f.fs.mu.Lock()
	if f.fs.m[f.channel] == f {
		delete(f.fs.m, f.channel)
	}
	f.fs.mu.Unlock()
	f.mu.Lock()
	f.err = err
	f.win, f.winBytes = nil, 0
	f.mu.Unlock()
	close(f.done)
}

// receive takes the events of one published message (see appendScript)
// into the window and wakes the waiting readers.
func (f *feed) receive(m rueidis.PubSubMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	added := false
	for msg := m.Message; msg != ""; {
		ev, off, rest, ok := parseMessage(msg, f.log.epoch)
		if !ok {
			f.win, f.winBytes = nil, 0 // readers fall back on the stream
			added = true               // and look there
			break
		}
		msg = rest
		added = f.add(off, ev) || added
	}
	if added {
		f.wakeAll()
	}
}

// add puts the event of offset off into the window, and reports whether
// it was not there. The window stays exact: an event older than its last
// is there already (this node appended it, and put it there, before its
// message came: see feeds.appended) or older than the window, which
// readers then read from the stream; one past the next starts the window
// again from it. f.mu must be held.
func (f *feed) add(off uint64, ev sluice.Event) bool {
	if len(f.win) > 0 {
		next := f.winFirst + uint64(len(f.win))
		if off < next {
			return false
		}
		if off > next {
			f.win, f.winBytes = nil, 0 // not the next: start again from it
		}
	}
	if len(f.win) == 0 {
		f.winFirst = off
	}
	f.win = append(f.win, ev)
	f.winBytes += len(ev.Data)
	for len(f.win) > 1 && (len(f.win) > windowEvents || f.winBytes > windowBytes) {
		f.winBytes -= len(f.win[0].Data)
		f.win[0] = sluice.Event{}
		f.win = f.win[1:]
		f.winFirst++
	}
	return true
}

// wakeAll wakes the readers waiting on f. f.mu must be held.
func (f *feed) wakeAll() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// appended puts events that this node has just appended to l, the last of
// them at offset top, into the window of l's feed, if this node follows
// l, and wakes its readers: they get them without waiting for their
// message, which comes on a connection of its own (rueidis spreads keyed
// commands over its pipelines; the subscriptions are on the first), and
// is then skipped; and a poll after the append finds them without asking
// Redis. With copyData, the window keeps copies of the events' data
// (the appender's may be reused); without, evs are the log's own already.
func (fs *feeds) appended(l *Log, top uint64, evs []sluice.Event, copyData bool) {
	fs.mu.Lock()
	f := fs.m[l.channel]
	fs.mu.Unlock()
	if f == nil {
		return
	}
	select {
	case <-f.ready: // only a window that its subscription keeps up is exact,
	default:
		// or one of a log that this node writes (see leases.writer):
		// its appends, which come here in order, are all the log's
		// events but a lost ending, which its channel brings.
		if !l.created || fs.s.leases.writer(l.name, l.epoch) != l {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	added := false
	off := top + 1 - uint64(len(evs))
	// Events this node handed its readers before Redis answered (see
	// provisional.go) are in the window already; Redis's answer wakes
	// only readers behind the window, who read from Redis what it has
	// now stored.
	behind := len(f.win) > 0 && off < f.winFirst
	for i, ev := range evs {
		ev.ID = formatID(off+uint64(i), l.epoch)
		if copyData {
			ev.Data = append([]byte(nil), ev.Data...)
		}
		added = f.add(off+uint64(i), ev) || added
	}
	if added || behind {
		f.wakeAll()
	}
}

// wake wakes the readers that wait on l's feed, if this node has one, to
// look at the log again.
func (fs *feeds) wake(l *Log) {
	fs.mu.Lock()
	f := fs.m[l.channel]
	fs.mu.Unlock()
	if f != nil {
		f.mu.Lock()
		f.wakeAll()
		f.mu.Unlock()
	}
}

// parseMessage reads the first event of msg, each
// "<offset>:<end>:<name length>:<data length>:<name><data>", and returns
// the rest.
func parseMessage(msg, epoch string) (ev sluice.Event, off uint64, rest string, ok bool) {
	var fields [4]string
	rest = msg
	for i := range fields {
		var found bool
		if fields[i], rest, found = strings.Cut(rest, ":"); !found {
			return sluice.Event{}, 0, "", false
		}
	}
	off, ok1 := eventid.ParseSeq(fields[0])
	e, err1 := strconv.Atoi(fields[1])
	n, err2 := strconv.Atoi(fields[2])
	d, err3 := strconv.Atoi(fields[3])
	if !ok1 || err1 != nil || err2 != nil || err3 != nil || n < 0 || d < 0 || n > len(rest) || d > len(rest)-n {
		return sluice.Event{}, 0, "", false
	}
	ev = sluice.Event{ID: formatID(off, epoch), Name: rest[:n], Data: []byte(rest[n : n+d]), End: sluice.End(e)}
	return ev, off, rest[n+d:], true
}

// serveState is what serve found.
type serveState int

const (
	missed   serveState = iota // the window cannot say: read the stream
	served                     // buf holds the events that follow
	caughtUp                   // nothing follows yet: wait
	atEnd                      // the log's ending event has been read
)

// serve copies the events after offset off from the window into buf, and
// returns the channel that the next event closes.
func (f *feed) serve(off uint64, buf []sluice.Event) ([]sluice.Event, <-chan struct{}, serveState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.win) == 0 || off+1 < f.winFirst {
		return buf, f.wake, missed
	}
	last := f.winFirst + uint64(len(f.win)) - 1
	switch {
	case off == last && f.win[len(f.win)-1].End != sluice.EndNone:
		return buf, f.wake, atEnd
	case off == last:
		return buf, f.wake, caughtUp
	case off > last:
		return buf, f.wake, missed
	}
	for i := off + 1 - f.winFirst; i < uint64(len(f.win)) && len(buf) < cap(buf); i++ {
		buf = append(buf, f.win[i])
	}
	return buf, f.wake, served
}

// release ends a reader's wait.
func (f *feed) release() {
	f.mu.Lock()
	f.waiting--
	if f.waiting == 0 {
		f.left = time.Now()
	}
	f.mu.Unlock()
}

// sweep pushes back the expiry of the rings this node's readers use, and
// ends the feeds unused for the linger time.
func (fs *feeds) sweep() {
	now := time.Now()
	var touch []rueidis.LuaExec
	fs.mu.Lock()
	for _, f := range fs.m {
		// A ring in use is pushed back a few times a retention, not at
		// every sweep: a node may follow thousands. Use counts from one
		// push to the next.
		due := now.Sub(f.touched) >= fs.s.opts.Retention/4
		f.mu.Lock()
		used := f.used || f.waiting > 0
		if due {
			f.used = false
		}
		idle := f.waiting == 0 && now.Sub(f.left) > fs.s.opts.Linger
		f.mu.Unlock()
		if due && used && f.log.ring {
			f.touched = now
			// Pushed back two retentions, not one: a janitor late by most
			// of a retention (a loaded machine, a slow Cluster node) must
			// not let a ring in use lapse. A ring whose readers left is
			// forgotten at most one retention later than an idle one.
			touch = append(touch, rueidis.LuaExec{Keys: f.log.keys, Args: []string{f.log.epoch, millis(2 * fs.s.opts.Retention)}})
		}
		if idle && !f.stopping {
			f.stopping = true
			f.cancel()
		}
	}
	fs.mu.Unlock()
	if len(touch) > 0 {
		// In one pipeline; a ring that is gone already, or a failure
		// that the readers will meet themselves, is no business of the
		// janitor's.
		ctx, cancel := context.WithTimeout(context.Background(), min(fs.s.opts.Retention, 5*time.Second))
		defer cancel()
		start := time.Now()
		var err error
		for _, res := range touchScript.ExecMulti(ctx, fs.s.client, touch...) {
			if err == nil && !rueidis.IsRedisNil(res.Error()) {
				err = res.Error()
			}
		}
		fs.s.observe("touch", start, err) // one pipeline, one round trip
	}
}

// end ends f, so that its readers look at the log again.
func (fs *feeds) end(f *feed) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if !f.stopping {
		f.stopping = true
		f.cancel()
	}
}

// closeAll ends every feed and waits for them.
func (fs *feeds) closeAll() {
	fs.mu.Lock()
	for _, f := range fs.m {
		f.stopping = true
		f.cancel()
	}
	fs.mu.Unlock()
	fs.wg.Wait()
}
