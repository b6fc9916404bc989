package ws

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
)

// readBatch is the most events one Log.Read returns to a subscription.
const readBatch = 64

// maxScratch is the most scratch space a subscription keeps between reads:
// room for a few chat chunks, not for the batches of a reader catching up.
const maxScratch = 1 << 10

// scratchReader is a log that can put the events it returns back together
// in the reader's scratch space rather than in new memory (memory.Log can).
type scratchReader interface {
	ReadScratch(ctx context.Context, after string, buf []sluice.Event, scratch []byte) ([]sluice.Event, []byte, error)
}

// conn is one WebSocket connection. Its goroutines: the handler's, which
// reads client messages and carries them out; one writer, which alone
// writes to the socket; and one per subscription, which reads a log into
// the send queue. serve owns them all and returns once they have ended.
type conn struct {
	h   *Handler
	ws  *websocket.Conn
	out *sendQueue
	// caller is who opened the connection (admit.Gate.Identify): every
	// operation is admitted for it, and it owns what it starts.
	caller admit.Caller
	path   string // the path the connection was opened on, for logs
	// requestID is the ID of the upgrade request (sluice.RequestID): the
	// log lines of the connection's operations, and of the generations it
	// starts, carry it.
	requestID string

	ctx    context.Context // done when the connection ends
	cancel context.CancelFunc

	mu       sync.Mutex
	subs     map[string]*sub
	pending  int      // chat.start subscriptions reserved, for their keys
	orphans  []string // generations to cancel: their cancel_on_close reader is gone
	draining bool
	subWG    sync.WaitGroup
}

// sub is one subscription: a goroutine following a stream or a topic.
type sub struct {
	key    string // "stream:<id>" or "topic:<name>"
	field  string // "stream" or "topic": the frame field that names it
	name   string
	cancel context.CancelCauseFunc

	cancelOnClose bool // a generation to stop if the connection closes first
	ended         bool // the log's ending event was sent; set by the sub goroutine
}

// unsubscribe is the cause of a subscription cancelled by its client; id
// is the client's request ID, echoed in the answer.
type unsubscribe struct{ id string }

func (unsubscribe) Error() string { return "unsubscribed" }

// errShutdown ends topic subscriptions when the server drains.
var errShutdown = errors.New("server shutting down; reconnect")

func newConn(h *Handler, wc *websocket.Conn, caller admit.Caller, path, requestID string) *conn {
	c := &conn{h: h, ws: wc, caller: caller, path: path, requestID: requestID, out: newSendQueue(h.opts.SendBuffer, h.opts.WriteTimeout), subs: make(map[string]*sub)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// serve runs the connection until it closes, and leaves no goroutine
// behind.
func (c *conn) serve() {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	stopDrain := context.AfterFunc(c.h.opts.Stop, c.drain)

	for {
		typ, msg, err := c.ws.Read(c.ctx)
		if err != nil {
			break
		}
		if typ != websocket.MessageText {
			c.fail(nil, invalid("", "invalid_frame", "Messages must be JSON text frames."))
			continue
		}
		c.handle(msg)
	}

	stopDrain()
	c.cancel()
	c.out.stop()
	c.subWG.Wait()
	<-writerDone
	_ = c.ws.CloseNow()
	c.stopGenerations()
}

// stopGenerations cancels the generations started with cancel_on_close
// that had not ended when the connection did.
func (c *conn) stopGenerations() {
	c.mu.Lock()
	ids := c.orphans
	c.mu.Unlock()
	for _, id := range ids {
		c.h.opts.Runner.Cancel(id)
	}
}

// writeLoop sends queued frames, pings when idle, and closes the connection
// when asked to. It is the only writer of data frames.
func (c *conn) writeLoop() {
	idle := time.NewTimer(c.h.opts.Heartbeat)
	defer idle.Stop()
	var frames [][]byte
	for {
		select {
		case <-c.out.wake:
		case <-idle.C:
			ctx, cancel := context.WithTimeout(c.ctx, c.h.opts.WriteTimeout)
			err := c.ws.Ping(ctx)
			cancel()
			if err != nil {
				c.cancel()
				return
			}
			idle.Reset(c.h.opts.Heartbeat)
			continue
		case <-c.ctx.Done():
			return
		}
		var req *closeRequest
		frames, req = c.out.take(frames)
		if req == nil || !req.now {
			if err := c.writeFrames(frames); err != nil {
				c.cancel()
				return
			}
		}
		clear(frames)
		if req != nil {
			_ = c.ws.Close(req.code, req.reason)
			c.cancel()
			return
		}
		idle.Reset(c.h.opts.Heartbeat)
	}
}

func (c *conn) writeFrames(frames [][]byte) error {
	if len(frames) == 0 {
		return nil
	}
	// Each write has a deadline of at least 1.75 times the write timeout (one
	// context is shared by the frames written within a quarter of it): a
	// producer that waited the write timeout for room has by then asked for
	// a clean close (1008), which goes out if the reader takes the frame in
	// time; a reader that takes nothing at all is disconnected when the
	// deadline passes (the library closes the socket).
	wt := c.h.opts.WriteTimeout
	var d deadline
	defer d.stop()
	for _, f := range frames {
		ctx := d.get(c.ctx, 2*wt, wt/4)
		err := c.ws.Write(ctx, websocket.MessageText, f)
		c.out.release(len(f))
		if err != nil {
			return err
		}
	}
	return nil
}

// reply queues a frame that answers a client message.
func (c *conn) reply(frame []byte) {
	if err := c.out.push(c.ctx, frame); errors.Is(err, errSlow) {
		c.cutOff()
	}
}

// cutOff closes the connection of a reader that lets its send buffer stay
// full for the write timeout.
func (c *conn) cutOff() {
	c.h.cutoffs.Add(1)
	c.h.opts.Observer.CutSlow(CutSendBufferFull)
	c.h.log.Info("ws: cut off a slow reader", "request_id", c.requestID, "buffer_bytes", c.h.opts.SendBuffer, "timeout", c.h.opts.WriteTimeout)
	c.out.requestClose(websocket.StatusPolicyViolation,
		"too slow: send buffer full for "+c.h.opts.WriteTimeout.String()+"; reconnect and resume from the last event IDs", true)
}

// reserve registers a subscription before it starts, so that the limits
// and the draining state are checked in one place. A chat.start reserves
// with an empty name, bound once the generation has its ID.
func (c *conn) reserve(field, name string, cancelOnClose bool) (*sub, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return nil, errDraining
	}
	if len(c.subs) >= c.h.opts.MaxSubscriptions {
		return nil, &sluice.Error{Code: sluice.ERATELIMIT, Kind: "too_many_subscriptions",
			Message: "This connection already has " + strconv.Itoa(len(c.subs)) + " subscriptions, its most; unsubscribe or open another connection."}
	}
	s := &sub{field: field, name: name, cancelOnClose: cancelOnClose}
	if name != "" {
		s.key = field + ":" + name
		if c.subs[s.key] != nil {
			return nil, &sluice.Error{Code: sluice.ECONFLICT, Kind: "already_subscribed",
				Message: "This connection already follows " + field + " " + truncate(name) + "."}
		}
	} else {
		c.pending++
		s.key = "pending:" + strconv.Itoa(c.pending)
	}
	c.subs[s.key] = s
	c.h.subs.Add(1)
	c.h.opts.Observer.Opened(field == "topic")
	return s, nil
}

// bind gives a reserved chat.start subscription its stream ID.
func (c *conn) bind(s *sub, id string) {
	c.mu.Lock()
	delete(c.subs, s.key)
	s.name, s.key = id, "stream:"+id
	c.subs[s.key] = s
	c.mu.Unlock()
}

// release forgets a subscription; when the connection drains and this was
// its last, the connection closes.
func (c *conn) release(s *sub) {
	c.mu.Lock()
	delete(c.subs, s.key)
	last := c.draining && len(c.subs) == 0
	if s.cancelOnClose && !s.ended && s.name != "" && c.ctx.Err() != nil {
		c.orphans = append(c.orphans, s.name)
	}
	c.mu.Unlock()
	c.h.subs.Add(-1)
	c.h.opts.Observer.Closed(s.field == "topic")
	if last {
		c.out.requestClose(websocket.StatusGoingAway, errShutdown.Error(), false)
	}
}

// follow starts the goroutine of subscription s, reading l after the ID
// after into the send queue until the log ends, the client unsubscribes or
// the connection ends.
func (c *conn) follow(s *sub, l sluice.Log, after string) {
	ctx, cancel := context.WithCancelCause(c.ctx)
	c.mu.Lock()
	s.cancel = cancel
	draining := c.draining
	c.mu.Unlock()
	if draining && s.field == "topic" {
		cancel(errShutdown)
	}
	c.subWG.Add(1)
	go func() {
		defer c.subWG.Done()
		defer cancel(nil)
		c.read(ctx, s, l, after)
	}()
}

func (c *conn) read(ctx context.Context, s *sub, l sluice.Log, after string) {
	defer c.release(s)
	// A small batch while the subscription is idle, the full one once a
	// read fills it: an idle subscriber then holds 0.5 KB here, not 4.
	events := make([]sluice.Event, 0, 8)
	// Every event is copied into its frame before the next read, so a log
	// that can (memory.Log) puts events back together in scratch, kept from
	// read to read while small: a subscription that keeps up with a live
	// log then reads without allocating.
	sr, _ := l.(scratchReader)
	var scratch []byte
	for {
		var err error
		if sr != nil {
			events, scratch, err = sr.ReadScratch(ctx, after, events, scratch)
			if cap(scratch) > maxScratch {
				scratch = nil
			}
		} else {
			events, err = l.Read(ctx, after, events)
		}
		if len(events) == cap(events) && cap(events) < readBatch {
			events = append(make([]sluice.Event, 0, readBatch), events...)
		}
		sent := 0
		for i := range events {
			ev := &events[i]
			frame := appendEvent(make([]byte, 0, eventSize(s.name, ev)), s.field, s.name, ev)
			if perr := c.out.push(ctx, frame); perr != nil {
				if errors.Is(perr, errSlow) {
					c.h.opts.Observer.Delivered(sent)
					c.cutOff()
					return
				}
				err = perr
				break
			}
			sent++
			after = ev.ID
			if ev.End != sluice.EndNone {
				c.mu.Lock()
				s.ended = true
				c.mu.Unlock()
			}
		}
		c.h.opts.Observer.Delivered(sent)
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF):
			return
		case ctx.Err() != nil:
			c.ended(s, context.Cause(ctx))
			return
		case errors.Is(err, errQueueClosed):
			return
		default:
			c.h.log.Error("ws: read failed", "request_id", c.requestID, "log", l.Name(), "err", err)
			c.reply(errorReply(&request{Stream: streamOf(s), Topic: topicOf(s)}, err))
			return
		}
	}
}

// ended tells the client why the server ended a subscription, or answers
// its unsubscribe.
func (c *conn) ended(s *sub, cause error) {
	r := reply{Type: "unsubscribed", Stream: streamOf(s), Topic: topicOf(s)}
	var u unsubscribe
	switch {
	case errors.As(cause, &u):
		r.ID = u.id
	case errors.Is(cause, errShutdown):
		r.Reason = errShutdown.Error()
	default:
		return // the connection is ending
	}
	_ = c.out.push(context.Background(), r.encode())
}

// drain runs when the server starts to shut down: topic subscriptions end,
// and the connection closes once it has none left.
func (c *conn) drain() {
	c.mu.Lock()
	c.draining = true
	empty := len(c.subs) == 0
	for _, s := range c.subs {
		if s.field == "topic" && s.cancel != nil {
			s.cancel(errShutdown)
		}
	}
	c.mu.Unlock()
	if empty {
		c.out.requestClose(websocket.StatusGoingAway, errShutdown.Error(), false)
	}
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

// deadline hands out a context with a timeout, renewed once it is older
// than a given age, so that writes in a row share one timer.
type deadline struct {
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time
}

func (d *deadline) get(parent context.Context, timeout, age time.Duration) context.Context {
	if d.ctx == nil || time.Since(d.start) > age {
		d.stop()
		d.ctx, d.cancel = context.WithTimeout(parent, timeout)
		d.start = time.Now()
	}
	return d.ctx
}

func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}
