package ws

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/internal/fanout"
	"github.com/sluice-dev/sluice/internal/sockio"
)

// conn is one WebSocket connection. While idle it has no goroutine: the
// handler's poller starts a read turn when the client has sent bytes (see
// read.go), the feeds of the logs it follows write events to it from the
// goroutine that delivers them, and a flusher goroutine exists only while
// the socket is full or a subscription is catching up (see send.go).
//
// Locks: mu guards the subscriptions' registry; wmu guards what goes onto
// the wire and each subscription's cursor. Neither is held while taking
// the other; wmu may be held while taking a feed's lock, never the
// reverse. wmu is only ever held for work that does not wait.
type conn struct {
	h *Handler
	// nc is the connection, written without waiting and watched by the
	// poller where it has a socket of its own; one that has none (TLS) is
	// read by a goroutine, and its writes wait up to sockio.FastWrite.
	nc     sockio.Conn
	caller admit.Caller // who opened the connection (admit.Gate.Identify): every operation is admitted for it, and it owns what it starts
	path   string       // the path the connection was opened on, for logs
	// requestID is the ID of the upgrade request (sluice.RequestID): the
	// log lines of the connection's operations, and of the generations it
	// starts, carry it.
	requestID string
	done      func() // gives back the connection's place in the stream limits

	ctx    context.Context // done when the connection ends
	cancel context.CancelFunc

	// Reading: rd is used by one read turn at a time (reading guards it).
	rd       readState
	reading  atomic.Bool
	pingSent atomic.Int64 // when the oldest unanswered ping went out (unix ns); 0: none
	lastPong atomic.Int64

	wmu       sync.Mutex
	out       []byte // bytes to write before anything else: the rest of a write, then queued frames
	partial   int    // how many leading bytes of out finish a frame already begun on the wire
	blocked   bool   // a flusher owns the socket: nothing is written but by it, out is queued to
	lagging   []*sub // subscriptions the flusher catches up from their logs
	closing   bool   // a close frame is queued: nothing more is
	closeSent bool   // and it has been written
	peerClose bool   // the client's close frame has come
	closed    bool   // the socket is closed
	linger    *time.Timer
	room      chan struct{} // closed when out shrinks, if someone waits for it
	lastWrite atomic.Int64

	mu       sync.Mutex
	subs     []*sub
	reserved int // chat.start subscriptions reserved, for their keys
	draining bool
	gone     bool // destroy has taken the subscriptions: none may be added
	once     atomic.Bool
}

// sub is one subscription: a cursor in a log that a feed or the flusher
// moves as events are written.
type sub struct {
	c     *conn
	key   string // "stream:<id>" or "topic:<name>"
	field string // "stream" or "topic": the frame field that names it
	name  string
	feed  *feed

	cancelOnClose bool // a generation to stop if the connection closes first

	// Under c.wmu.
	cursor string // ID of the last event written (or queued)
	live   bool   // events may still be written
	lag    bool   // in c.lagging, owned by the flusher rather than the feed
	ended  bool   // the log's ending event was written

	wait fanout.Backoff // the flusher's looks while nothing follows cursor (flusher only)
}

// unsubscribe is the cause of a subscription ended by its client; id is
// the client's request ID, echoed in the answer.
type unsubscribe struct{ id string }

func (unsubscribe) Error() string { return "unsubscribed" }

// errShutdown ends topic subscriptions when the server drains.
var errShutdown = errors.New("server shutting down; reconnect")

func newConn(h *Handler, nc net.Conn, caller admit.Caller, path, requestID string, done func()) *conn {
	c := &conn{h: h, caller: caller, path: path, requestID: requestID, done: done}
	c.nc.Init(nc)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	now := time.Now().UnixNano()
	c.lastWrite.Store(now)
	c.lastPong.Store(now)
	return c
}

// reserve registers a subscription before it starts, so that the limits
// and the draining state are checked in one place. A chat.start reserves
// with an empty name, bound once the generation has its ID.
func (c *conn) reserve(field, name string, cancelOnClose bool) (*sub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining || c.gone {
		return nil, errDraining
	}
	if len(c.subs) >= c.h.opts.MaxSubscriptions {
		return nil, &sluice.Error{Code: sluice.ERATELIMIT, Kind: "too_many_subscriptions",
			Message: "This connection already has " + strconv.Itoa(len(c.subs)) + " subscriptions, its most; unsubscribe or open another connection."}
	}
	s := &sub{c: c, field: field, name: name, cancelOnClose: cancelOnClose}
	if name != "" {
		s.key = field + ":" + name
		if c.find(s.key) != nil {
			return nil, &sluice.Error{Code: sluice.ECONFLICT, Kind: "already_subscribed",
				Message: "This connection already follows " + field + " " + truncate(name) + "."}
		}
	} else {
		c.reserved++
		s.key = "pending:" + strconv.Itoa(c.reserved)
	}
	c.subs = append(c.subs, s)
	c.h.subs.Add(1)
	c.h.opts.Observer.Opened(field == "topic")
	return s, nil
}

// find returns the subscription with key, or nil. c.mu is held. A slice,
// not a map: a connection has a few subscriptions, and an idle one should
// cost little.
func (c *conn) find(key string) *sub {
	for _, s := range c.subs {
		if s.key == key {
			return s
		}
	}
	return nil
}

// bind gives a reserved chat.start subscription its stream ID. A
// connection that ended meanwhile stops a generation started with
// cancel_on_close.
func (c *conn) bind(s *sub, id string) {
	c.mu.Lock()
	s.name, s.key = id, "stream:"+id
	gone := c.gone
	c.mu.Unlock()
	if gone && s.cancelOnClose {
		c.h.opts.Runner.Cancel(id)
	}
}

// release forgets a subscription; when the connection drains and this was
// its last, the connection closes with 1001.
func (c *conn) release(s *sub) {
	c.mu.Lock()
	found := false
	for i, o := range c.subs {
		if o == s {
			c.subs = append(c.subs[:i], c.subs[i+1:]...)
			found = true
			break
		}
	}
	last := found && c.draining && len(c.subs) == 0
	c.mu.Unlock()
	if !found {
		return
	}
	c.h.subs.Add(-1)
	c.h.opts.Observer.Closed(s.field == "topic")
	if s.feed != nil {
		c.h.unref(s.feed)
	}
	if last {
		c.requestClose(ws.StatusGoingAway, errShutdown.Error(), false)
	}
}

// follow starts subscription s on log l from just after the ID after: it
// catches up from the log in the flusher, then joins the log's feed.
func (c *conn) follow(s *sub, l sluice.Log, after string) {
	f := c.h.feedFor(l, s.field, s.name)
	c.mu.Lock()
	if c.gone { // destroy has forgotten s already
		c.mu.Unlock()
		c.h.unref(f)
		return
	}
	s.feed = f
	shutdown := c.draining && s.field == "topic"
	c.mu.Unlock()
	c.wmu.Lock()
	if c.closing || c.closed {
		c.wmu.Unlock()
		c.release(s)
		return
	}
	s.cursor, s.live, s.lag = after, true, true
	c.lagging = append(c.lagging, s)
	c.startFlush()
	c.wmu.Unlock()
	if shutdown {
		c.endSub(s, errShutdown)
	}
}

// endSub ends a live subscription for cause: an unsubscribe or a shutdown
// is answered with "unsubscribed", after which no event of it is written;
// any other cause ends it silently.
func (c *conn) endSub(s *sub, cause error) {
	r := reply{Type: "unsubscribed", Stream: streamOf(s), Topic: topicOf(s)}
	var u unsubscribe
	answer := true
	switch {
	case errors.As(cause, &u):
		r.ID = u.id
	case errors.Is(cause, errShutdown):
		r.Reason = errShutdown.Error()
	default:
		answer = false
	}
	c.wmu.Lock()
	if !s.live {
		c.wmu.Unlock()
		return
	}
	s.live = false
	c.unlag(s)
	if answer {
		c.queueLocked(r.frame())
	}
	c.wmu.Unlock()
	s.feed.Leave(s)
	c.release(s)
}

// failSub ends subscription s, whose log cannot be read, with an error
// frame that says why; the connection stays open.
func (c *conn) failSub(s *sub, err error) {
	c.wmu.Lock()
	live := s.live
	c.wmu.Unlock()
	if !live { // ended meanwhile: nothing of it is to follow
		return
	}
	c.reply(errorReply(&request{Stream: streamOf(s), Topic: topicOf(s)}, err))
	c.endSub(s, nil)
}

// unlag takes s out of the flusher's list. c.wmu is held.
func (c *conn) unlag(s *sub) {
	if !s.lag {
		return
	}
	s.lag = false
	for i, o := range c.lagging {
		if o == s {
			c.lagging = append(c.lagging[:i], c.lagging[i+1:]...)
			return
		}
	}
}

// drain runs when the server starts to shut down: topic subscriptions end,
// new ones are refused, and the connection closes with 1001 once it has
// none left (its generations have ended).
func (c *conn) drain() {
	c.mu.Lock()
	c.draining = true
	empty := len(c.subs) == 0
	var topics []*sub
	for _, s := range c.subs {
		if s.field == "topic" {
			topics = append(topics, s)
		}
	}
	c.mu.Unlock()
	for _, s := range topics {
		c.endSub(s, errShutdown)
	}
	if empty {
		c.requestClose(ws.StatusGoingAway, errShutdown.Error(), false)
	}
}

// destroy closes the connection at once and forgets it: its subscriptions
// end, the generations it started with cancel_on_close that have not ended
// are stopped, and its place in the stream limits is given back. It may
// wait for those generations, so it never runs in a goroutine that
// appends to a log.
func (c *conn) destroy() {
	if c.once.Swap(true) {
		return
	}
	c.wmu.Lock()
	c.closed = true
	c.out, c.lagging = nil, nil
	if c.linger != nil {
		c.linger.Stop()
	}
	c.wakeRoom()
	c.wmu.Unlock()
	c.h.poll.Forget(&c.nc)
	_ = c.nc.Close()
	c.cancel()

	c.mu.Lock()
	c.gone = true
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	var orphans []string
	for _, s := range subs {
		c.wmu.Lock()
		s.live = false
		ended := s.ended
		c.wmu.Unlock()
		if s.feed != nil {
			s.feed.Leave(s)
			c.h.unref(s.feed)
		}
		c.h.subs.Add(-1)
		c.h.opts.Observer.Closed(s.field == "topic")
		if s.cancelOnClose && !ended && s.field == "stream" && s.name != "" {
			orphans = append(orphans, s.name)
		}
	}
	for _, id := range orphans {
		c.h.opts.Runner.Cancel(id)
	}
	c.h.leave(c)
	c.done()
}

func streamOf(s *sub) string {
	if s.field == "stream" {
		return s.name
	}
	return ""
}

func topicOf(s *sub) string {
	if s.field == "topic" {
		return s.name
	}
	return ""
}
