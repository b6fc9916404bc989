package api

import (
	"encoding/json"
	"net/http"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
)

// HeaderLastEventID, on the response to a subscription, names the event
// the subscription starts after ("" for the topic's start): the
// Last-Event-ID to resume with if the connection drops before the first
// event. Without it, a subscriber to new events only that is cut before
// any came could not tell the server where it had been, and would miss
// what was published until it was back. It is a header, not an id: line,
// because an id: line commits only at a blank line, and a block with no
// data reaches some clients (@microsoft/fetch-event-source) as an empty
// message.
const HeaderLastEventID = "Sluice-Last-Event-ID"

func topicOf(r *http.Request) string {
	if n := r.PathValue("name"); n != "" {
		return n
	}
	return DefaultTopic
}

// handleSubscribe streams a topic: from just after Last-Event-ID (or
// ?last_event_id=) when given, from the oldest kept event with
// ?from=start, else only what is published from now on.
func (s *Server) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	c, ok := s.caller(w, r)
	if !ok {
		return
	}
	topic, err := s.gate.Subscribe(r.Context(), c, topicOf(r), "name")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	// The stream's place is taken before the topic is opened, so that a
	// subscription refused for want of one creates no topic.
	release, ok := s.openStream(w, r, c)
	if !ok {
		return
	}
	l, err := topic.Open(r.Context())
	if err != nil {
		release()
		writeError(w, r, s.log, err)
		return
	}
	s.followTopic(w, r, l, release)
}

// followTopic streams the ring log l, a topic or a change feed, to r: from
// just after Last-Event-ID (or ?last_event_id=) when given, from the
// oldest kept event with ?from=start, else only what comes from now on.
// release gives back the stream's place; it is called when the stream
// ends, or at once when it cannot begin.
func (s *Server) followTopic(w http.ResponseWriter, r *http.Request, l sluice.Log, release func()) {
	after := lastEventID(r)
	resumed := after != ""
	if after == "" && r.URL.Query().Get("from") != "start" {
		var err error
		if after, _, err = l.Last(r.Context()); err != nil {
			release()
			writeError(w, r, s.log, err)
			return
		}
	}
	if !s.checkAfter(w, r, l, after, resumed) {
		release()
		return
	}
	w.Header().Set(HeaderLastEventID, after)
	s.stream(w, r, l, after, streamOptions{stop: s.drainCtx, topic: true, release: release})
}

// publishBody is what POST /v1/topics/{name}/events takes. A string Data is
// sent as it is; any other JSON value is sent as compact JSON.
type publishBody struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	pass, ok := s.enter(w, r)
	if !ok {
		return
	}
	var b publishBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &b); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	ev, err := admit.TopicEvent(b.Event, b.Data)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	s.publish(w, r, pass, topicOf(r), ev)
}

// handleSendMessage is the seeds' POST /send-message: {"message": "..."}
// goes to every subscriber of the default topic as the event's data.
func (s *Server) handleSendMessage(w http.ResponseWriter, r *http.Request) {
	pass, ok := s.enter(w, r)
	if !ok {
		return
	}
	var b struct {
		Message *string `json:"message"`
	}
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &b); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if b.Message == nil {
		writeError(w, r, s.log, &sluice.Error{Code: sluice.EINVALID, Param: "message", Kind: "missing_required_parameter",
			Message: "Missing required parameter: 'message'."})
		return
	}
	s.publish(w, r, pass, DefaultTopic, sluice.Event{Data: []byte(*b.Message)})
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request, pass *admit.Pass, topic string, ev sluice.Event) {
	id, err := pass.Publish(r.Context(), topic, "name", ev)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "topic": topic, "object": "topic.event"})
}
