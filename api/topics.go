package api

import (
	"encoding/json"
	"net/http"
	"regexp"

	"github.com/sluice-dev/sluice"
)

// topicName is what a topic may be called: safe in a URL path and a log
// name.
var topicName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// openTopic returns the log behind a topic, creating it on first use.
func (s *Server) openTopic(r *http.Request, name string) (sluice.Log, error) {
	if !topicName.MatchString(name) {
		return nil, invalid("name", "invalid_topic",
			"A topic name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.")
	}
	return s.store.Open(r.Context(), "topic/"+name, true, sluice.LogOptions{MaxLen: s.cfg.TopicMaxLen, Ring: true})
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
	if len(b.Data) == 0 || string(b.Data) == "null" {
		writeError(w, r, s.log, invalid("data", "missing_required_parameter", "Missing required parameter: 'data'."))
		return
	}
	data := []byte(b.Data)
	var str string
	if json.Unmarshal(b.Data, &str) == nil {
		data = []byte(str)
	} else if c, err := compact(b.Data); err == nil {
		data = c
	}
	s.publish(w, r, topicOf(r), sluice.Event{Name: b.Event, Data: data})
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
	if len(ev.Name) > 128 {
		writeError(w, r, s.log, invalid("event", "invalid_value", "'event' must be at most 128 characters."))
		return
	}
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
