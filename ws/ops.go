package ws

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
)

// handle carries out one client message. A message that does what an HTTP
// API request does (chat.start, stream.attach, stream.cancel,
// topic.subscribe, topic.publish) is admitted by the gate as that request
// is, with the same checks in the same order, and is charged to the
// caller's rate budget as that request is; unsubscribe only ends what was
// admitted.
func (c *conn) handle(msg []byte) {
	var req request
	if err := json.Unmarshal(msg, &req); err != nil {
		c.fail(nil, badJSON(err))
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
		c.fail(&req, invalid("type", "missing_required_parameter", "Missing required parameter: 'type'."))
	default:
		c.fail(&req, invalid("type", "unknown_type",
			"Unknown message type '"+truncate(req.Type)+"': expected chat.start, stream.attach, stream.cancel, topic.subscribe, topic.publish or unsubscribe."))
	}
}

// fail answers the message req (which may be nil) with err in an error
// frame, and logs it as the SSE API logs the errors it answers.
func (c *conn) fail(req *request, err error) {
	method := "message"
	if req != nil && req.Type != "" {
		method = truncate(req.Type)
	}
	c.h.logError(method, c.path, c.requestID, err)
	c.reply(errorReply(req, err))
}

// enter admits one operation of the connection's caller (see
// admit.Gate.Enter); on refusal it has answered.
func (c *conn) enter(req *request) (*admit.Pass, bool) {
	p, err := c.h.opts.Gate.Enter(c.ctx, c.caller)
	if err != nil {
		c.fail(req, err)
		return nil, false
	}
	return p, true
}

func (c *conn) chatStart(req *request) {
	pass, ok := c.enter(req)
	if !ok {
		return
	}
	if len(req.Body) == 0 || string(req.Body) == "null" {
		c.fail(req, invalid("body", "missing_required_parameter", "Missing required parameter: 'body' (a chat completion request)."))
		return
	}
	creq, model, err := pass.Chat(req.Body)
	if err != nil {
		c.fail(req, err)
		return
	}
	creq.Stream = true
	s, err := c.reserve("stream", "", req.CancelOnClose)
	if err != nil {
		c.fail(req, err)
		return
	}
	g, err := pass.Start(sluice.WithRequestID(c.ctx, c.requestID), c.h.opts.Runner, creq, model)
	if err != nil {
		c.release(s)
		c.fail(req, err)
		return
	}
	c.bind(s, g.ID)
	c.reply(reply{Type: "started", ID: req.ID, Stream: g.ID, Conversation: g.ConversationID, Message: g.MessageID})
	c.follow(s, g.Log, "")
}

// openGeneration returns the log of the stream a request names, if this
// connection's key may use it; otherwise it has answered with an error.
func (c *conn) openGeneration(req *request) (sluice.Log, bool) {
	pass, ok := c.enter(req)
	if !ok {
		return nil, false
	}
	if req.Stream == "" {
		c.fail(req, invalid("stream", "missing_required_parameter", "Missing required parameter: 'stream'."))
		return nil, false
	}
	l, err := pass.Stream(c.ctx, req.Stream)
	if err != nil {
		c.fail(req, err)
		return nil, false
	}
	return l, true
}

func (c *conn) streamAttach(req *request) {
	l, ok := c.openGeneration(req)
	if !ok {
		return
	}
	s, err := c.reserve("stream", req.Stream, false)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.subscribe(req, s, l, req.LastEventID)
}

func (c *conn) topicSubscribe(req *request) {
	topic, err := c.h.opts.Gate.Subscribe(c.ctx, c.caller, req.Topic, "topic")
	if err != nil {
		c.fail(req, err)
		return
	}
	switch req.From {
	case "", "start":
	default:
		c.fail(req, invalid("from", "invalid_value", "Invalid value for 'from': only \"start\" is allowed."))
		return
	}
	// The subscription's place is taken before the topic is opened, so that
	// a subscription refused for want of one creates no topic.
	s, err := c.reserve("topic", req.Topic, false)
	if err != nil {
		c.fail(req, err)
		return
	}
	l, err := topic.Open(c.ctx)
	if err != nil {
		c.release(s)
		c.fail(req, err)
		return
	}
	after := req.LastEventID
	if after == "" && req.From != "start" {
		if after, _, err = l.Last(c.ctx); err != nil {
			c.release(s)
			c.fail(req, err)
			return
		}
	}
	c.subscribe(req, s, l, after)
}

// subscribe starts the reserved subscription s, following l after the
// given ID, once that ID checks; otherwise it gives s back.
func (c *conn) subscribe(req *request, s *sub, l sluice.Log, after string) {
	// Poll once, so that a bad ID is answered now, and a reader that has
	// read a whole ended stream is told so (SSE answers 204).
	switch err := c.h.opts.Gate.CheckAfter(c.ctx, l, after, req.LastEventID != ""); {
	case errors.Is(err, io.EOF):
		c.release(s)
		c.reply(reply{Type: "unsubscribed", ID: req.ID, Stream: req.Stream, Topic: req.Topic, Reason: "ended"})
		return
	case err != nil:
		c.release(s)
		c.fail(req, err)
		return
	}
	c.reply(reply{Type: "subscribed", ID: req.ID, Stream: streamOf(s), Topic: topicOf(s)})
	c.follow(s, l, after)
}

func (c *conn) streamCancel(req *request) {
	l, ok := c.openGeneration(req)
	if !ok {
		return
	}
	end, err := c.h.opts.Runner.Stop(c.ctx, req.Stream, l)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.reply(reply{Type: "cancelled", ID: req.ID, Stream: req.Stream, Status: end.String()})
}

func (c *conn) topicPublish(req *request) {
	pass, ok := c.enter(req)
	if !ok {
		return
	}
	ev, err := admit.TopicEvent(req.Event, req.Data)
	if err != nil {
		c.fail(req, err)
		return
	}
	id, err := pass.Publish(c.ctx, req.Topic, "topic", ev)
	if err != nil {
		c.fail(req, err)
		return
	}
	c.reply(reply{Type: "published", ID: req.ID, Topic: req.Topic, EventID: id})
}

func (c *conn) unsubscribe(req *request) {
	var key string
	switch {
	case req.Stream != "" && req.Topic == "":
		key = "stream:" + req.Stream
	case req.Topic != "" && req.Stream == "":
		key = "topic:" + req.Topic
	default:
		c.fail(req, invalid("stream", "invalid_value", "Name either a 'stream' or a 'topic' to unsubscribe from."))
		return
	}
	c.mu.Lock()
	s := c.find(key)
	c.mu.Unlock()
	if s == nil {
		c.fail(req, &sluice.Error{Code: sluice.ENOTFOUND, Kind: "not_subscribed",
			Message: "This connection has no subscription to " + truncate(req.Stream+req.Topic) + "."})
		return
	}
	// No event of it follows the answer (see endSub).
	c.endSub(s, unsubscribe{id: req.ID})
}
