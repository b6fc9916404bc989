package api

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"

	"github.com/sluice-dev/sluice"
)

// topicName is what a topic may be called: safe in a URL path and a log
// name.
var topicName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// OpenTopic returns the log behind the named topic in store, a ring of
// maxLen events, creating it on first use. A bad name is EINVALID against
// param, the field the client named it in. Both transports reach topics
// through it, so that they reach the same ones.
func OpenTopic(ctx context.Context, store sluice.Store, name string, maxLen int, param string) (sluice.Log, error) {
	if name == "" {
		return nil, invalid(param, "missing_required_parameter", "Missing required parameter: '"+param+"'.")
	}
	if !topicName.MatchString(name) {
		return nil, invalid(param, "invalid_topic",
			"A topic name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.")
	}
	return store.Open(ctx, "topic/"+name, true, sluice.LogOptions{MaxLen: maxLen, Ring: true})
}

// openTopic is OpenTopic for a request naming the topic in its path.
func (s *Server) openTopic(r *http.Request, name string) (sluice.Log, error) {
	return OpenTopic(r.Context(), s.store, name, s.cfg.TopicMaxLen, "name")
}

// TopicEvent is the event that publishing data under the event name name
// appends: a JSON string is sent as the text it holds, any other JSON value
// as compact JSON. Missing or null data, and a name over 128 characters,
// are EINVALID.
func TopicEvent(name string, data json.RawMessage) (sluice.Event, error) {
	if len(data) == 0 || string(data) == "null" {
		return sluice.Event{}, invalid("data", "missing_required_parameter", "Missing required parameter: 'data'.")
	}
	if len(name) > 128 {
		return sluice.Event{}, invalid("event", "invalid_value", "'event' must be at most 128 characters.")
	}
	out := []byte(data)
	var str string
	if json.Unmarshal(data, &str) == nil {
		out = []byte(str)
	} else if c, err := compact(data); err == nil {
		out = c
	}
	return sluice.Event{Name: name, Data: out}, nil
}

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
	topic := topicOf(r)
	if _, ok := s.enter(w, r, s.publicTopic(topic)); !ok {
		return
	}
	l, err := s.openTopic(r, topic)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	after := lastEventID(r)
	if after == "" && r.URL.Query().Get("from") != "start" {
		if after, _, err = l.Last(r.Context()); err != nil {
			writeError(w, r, s.log, err)
			return
		}
	}
	release, ok := s.startStream(w, r, l, after)
	if !ok {
		return
	}
	s.stream(w, r, l, after, streamOptions{stop: s.drainCtx, release: release})
}

// publicTopic reports whether a topic may be read without a key.
func (s *Server) publicTopic(name string) bool {
	for _, p := range s.cfg.PublicTopics {
		if p == "*" || p == name {
			return true
		}
	}
	return false
}

// publishBody is what POST /v1/topics/{name}/events takes. A string Data is
// sent as it is; any other JSON value is sent as compact JSON.
type publishBody struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.enter(w, r, false); !ok {
		return
	}
	var b publishBody
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &b); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	ev, err := TopicEvent(b.Event, b.Data)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	s.publish(w, r, topicOf(r), ev)
}

// handleSendMessage is the seeds' POST /send-message: {"message": "..."}
// goes to every subscriber of the default topic as the event's data.
func (s *Server) handleSendMessage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.enter(w, r, false); !ok {
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
		writeError(w, r, s.log, invalid("message", "missing_required_parameter", "Missing required parameter: 'message'."))
		return
	}
	s.publish(w, r, DefaultTopic, sluice.Event{Data: []byte(*b.Message)})
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request, topic string, ev sluice.Event) {
	l, err := s.openTopic(r, topic)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	id, err := l.Append(r.Context(), ev)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "topic": topic, "object": "topic.event"})
}
