package ws

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/gen"
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
	who string // the API key's name (api.Caller); it owns what it starts

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

func newConn(h *Handler, wc *websocket.Conn, who string) *conn {
	c := &conn{h: h, ws: wc, who: who, out: newSendQueue(h.opts.SendBuffer, h.opts.WriteTimeout), subs: make(map[string]*sub)}
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
			c.reply(errorReply(nil, invalid("", "invalid_frame", "Messages must be JSON text frames.")))
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
	c.h.log.Info("ws: cut off a slow reader", "buffer_bytes", c.h.opts.SendBuffer, "timeout", c.h.opts.WriteTimeout)
	c.out.requestClose(websocket.StatusPolicyViolation,
		"too slow: send buffer full for "+c.h.opts.WriteTimeout.String()+"; reconnect and resume from the last event IDs", true)
}

// handle carries out one client message.
func (c *conn) handle(msg []byte) {
	var req request
	if err := json.Unmarshal(msg, &req); err != nil {
		c.reply(errorReply(nil, badJSON(err)))
		return
	}
	switch req.Type {
	case "chat.start":
		c.chatStart(&req)
	case "stream.attach":
		c.streamAttach(&req)
	case "stream.cancel":
		c.streamCancel(&req)
	case "topic.subscribe":
		c.topicSubscribe(&req)
	case "topic.publish":
		c.topicPublish(&req)
	case "unsubscribe":
		c.unsubscribe(&req)
	case "":
		c.reply(errorReply(&req, invalid("type", "missing_required_parameter", "Missing required parameter: 'type'.")))
	default:
		c.reply(errorReply(&req, invalid("type", "unknown_type",
			"Unknown message type '"+truncate(req.Type)+"': expected chat.start, stream.attach, stream.cancel, topic.subscribe, topic.publish or unsubscribe.")))
	}
}

func (c *conn) chatStart(req *request) {
	if len(req.Body) == 0 || string(req.Body) == "null" {
		c.reply(errorReply(req, invalid("body", "missing_required_parameter", "Missing required parameter: 'body' (a chat completion request).")))
		return
	}
	creq, err := api.DecodeChat(req.Body)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	creq.Stream = true
	model, err := c.h.opts.Models.Lookup(creq.Model)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	s, err := c.reserve("stream", "", req.CancelOnClose)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	g, err := c.h.opts.Runner.StartFor(c.who, creq, model)
	if err != nil {
		c.release(s)
		c.reply(errorReply(req, err))
		return
	}
	c.bind(s, g.ID)
	c.reply(reply{Type: "started", ID: req.ID, Stream: g.ID}.encode())
	c.follow(s, g.Log, "")
}

// openGeneration returns the log of the stream a request names, if this
// connection's key may use it; otherwise it has answered with an error.
func (c *conn) openGeneration(req *request) (sluice.Log, bool) {
	if req.Stream == "" {
		c.reply(errorReply(req, invalid("stream", "missing_required_parameter", "Missing required parameter: 'stream'.")))
		return nil, false
	}
	l, err := c.h.opts.Store.Open(c.ctx, gen.LogName(req.Stream), false, sluice.LogOptions{})
	if err == nil {
		err = api.MayUse(c.who, l)
	}
	if err != nil {
		c.reply(errorReply(req, err))
		return nil, false
	}
	return l, true
}

func (c *conn) streamAttach(req *request) {
	l, ok := c.openGeneration(req)
	if !ok {
		return
	}
	c.subscribe(req, "stream", req.Stream, l, req.LastEventID)
}

func (c *conn) topicSubscribe(req *request) {
	l, err := c.openTopic(req.Topic)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	after := req.LastEventID
	switch req.From {
	case "", "start":
	default:
		c.reply(errorReply(req, invalid("from", "invalid_value", "Invalid value for 'from': only \"start\" is allowed.")))
		return
	}
	if after == "" && req.From != "start" {
		if after, _, err = l.Last(c.ctx); err != nil {
			c.reply(errorReply(req, err))
			return
		}
	}
	c.subscribe(req, "topic", req.Topic, l, after)
}

// subscribe starts following l after the given ID, once that ID checks.
func (c *conn) subscribe(req *request, field, name string, l sluice.Log, after string) {
	// Poll once, so that a bad ID is answered now, and a reader that has
	// read a whole ended stream is told so (SSE answers 204).
	switch err := sluice.CheckAfter(c.ctx, l, after); {
	case errors.Is(err, io.EOF):
		c.reply(reply{Type: "unsubscribed", ID: req.ID, Stream: req.Stream, Topic: req.Topic, Reason: "ended"}.encode())
		return
	case err != nil:
		c.reply(errorReply(req, err))
		return
	}
	s, err := c.reserve(field, name, false)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	c.reply(reply{Type: "subscribed", ID: req.ID, Stream: streamOf(s), Topic: topicOf(s)}.encode())
	c.follow(s, l, after)
}

func (c *conn) streamCancel(req *request) {
	l, ok := c.openGeneration(req)
	if !ok {
		return
	}
	c.h.opts.Runner.Cancel(req.Stream)
	_, end, err := l.Last(c.ctx)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	c.reply(reply{Type: "cancelled", ID: req.ID, Stream: req.Stream, Status: end.String()}.encode())
}

func (c *conn) topicPublish(req *request) {
	ev, err := api.TopicEvent(req.Event, req.Data)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	l, err := c.openTopic(req.Topic)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	id, err := l.Append(c.ctx, ev)
	if err != nil {
		c.reply(errorReply(req, err))
		return
	}
	c.reply(reply{Type: "published", ID: req.ID, Topic: req.Topic, EventID: id}.encode())
}

func (c *conn) unsubscribe(req *request) {
	var key string
	switch {
	case req.Stream != "" && req.Topic == "":
		key = "stream:" + req.Stream
	case req.Topic != "" && req.Stream == "":
		key = "topic:" + req.Topic
	default:
		c.reply(errorReply(req, invalid("stream", "invalid_value", "Name either a 'stream' or a 'topic' to unsubscribe from.")))
		return
	}
	c.mu.Lock()
	s := c.subs[key]
	c.mu.Unlock()
	if s == nil {
		c.reply(errorReply(req, &sluice.Error{Code: sluice.ENOTFOUND, Kind: "not_subscribed",
			Message: "This connection has no subscription to " + truncate(req.Stream+req.Topic) + "."}))
		return
	}
	// The subscription's goroutine answers, so that no event of it follows
	// the answer.
	s.cancel(unsubscribe{id: req.ID})
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
		for i := range events {
			ev := &events[i]
			frame := appendEvent(make([]byte, 0, eventSize(s.name, ev)), s.field, s.name, ev)
			if perr := c.out.push(ctx, frame); perr != nil {
				if errors.Is(perr, errSlow) {
					c.cutOff()
					return
				}
				err = perr
				break
			}
			after = ev.ID
			if ev.End != sluice.EndNone {
				c.mu.Lock()
				s.ended = true
				c.mu.Unlock()
			}
		}
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
			c.h.log.Error("ws: read failed", "log", l.Name(), "err", err)
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
