package admit

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/sluice-dev/sluice"
)

// topicName is what a topic may be called: safe in a URL path and a log
// name.
var topicName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// checkTopicName refuses a topic name that breaks topicName, as EINVALID
// against param, the field the client named it in.
func checkTopicName(name, param string) error {
	if name == "" {
		return invalid(param, "missing_required_parameter", "Missing required parameter: '"+param+"'.")
	}
	if !topicName.MatchString(name) {
		return invalid(param, "invalid_topic",
			"A topic name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.")
	}
	return nil
}

// openTopic returns the log behind the named topic in store, a ring of
// maxLen events, creating it on first use. A bad name is EINVALID against
// param, the field the client named it in. Every transport reaches topics
// through it (by Topic.Open and Pass.Publish), so that all reach the same
// ones.
func openTopic(ctx context.Context, store sluice.Store, name string, maxLen int, param string) (sluice.Log, error) {
	if err := checkTopicName(name, param); err != nil {
		return nil, err
	}
	return store.Open(ctx, "topic/"+name, true, sluice.LogOptions{MaxLen: maxLen, Ring: true})
}

// Topic is an admitted subscription to a topic: the caller may read it,
// and its name is valid. Nothing is asked of the store until Open, so that
// a transport can take the subscription's place in its limits first, and a
// refused subscription creates no topic.
type Topic struct {
	g           *Gate
	name, param string
}

// Subscribe admits reading the named topic (param is the field that names
// it, for errors): it needs a key unless the topic is public, and is
// charged to the caller's rate budget.
func (g *Gate) Subscribe(ctx context.Context, c Caller, name, param string) (*Topic, error) {
	if c.noKey && !g.publicTopic(name) {
		return nil, g.refuse("api-keys", errNoKey)
	}
	if err := g.lim.allow(ctx, c.budget()); err != nil {
		return nil, g.refuse("rate-limit", err)
	}
	if err := checkTopicName(name, param); err != nil {
		return nil, err
	}
	return &Topic{g: g, name: name, param: param}, nil
}

// Open returns the topic's log, creating it on first use.
func (t *Topic) Open(ctx context.Context) (sluice.Log, error) {
	l, err := openTopic(ctx, t.g.store, t.name, t.g.cfg.TopicMaxLen, t.param)
	return l, t.g.topicRefusal(err)
}

// topicRefusal counts err as a refusal when it is the store's, for holding
// as many topics as it may, and returns it.
func (g *Gate) topicRefusal(err error) error {
	if sluice.ErrorKind(err) == "too_many_topics" {
		return g.refuse("max-topics", err)
	}
	return err
}

// publicTopic reports whether a topic may be read without a key.
func (g *Gate) publicTopic(name string) bool {
	for _, p := range g.cfg.PublicTopics {
		if p == "*" || p == name {
			return true
		}
	}
	return false
}

// Publish appends ev to the named topic (param is the field that names it,
// for errors), creating the topic on first use, and returns the event's
// ID. The event's name must be at most 128 characters without CR, LF or
// NUL, which would end an SSE "event:" line early (SSE and /ws would then
// carry different names); its data is normalised as NormalizeData says.
func (p *Pass) Publish(ctx context.Context, topic, param string, ev sluice.Event) (string, error) {
	if len(ev.Name) > 128 {
		return "", invalid("event", "invalid_value", "'event' must be at most 128 characters.")
	}
	if strings.ContainsAny(ev.Name, "\r\n\x00") {
		return "", invalid("event", "invalid_value", "'event' must not contain CR, LF or NUL characters.")
	}
	ev.Data = NormalizeData(ev.Data)
	l, err := openTopic(ctx, p.g.store, topic, p.g.cfg.TopicMaxLen, param)
	if err != nil {
		return "", p.g.topicRefusal(err)
	}
	id, err := l.Append(ctx, ev)
	if err == nil {
		p.g.obs.Published()
	}
	return id, err
}

// NormalizeData returns data with every CR LF and every lone CR turned into
// LF. SSE has no way to send a CR in data: its encoder breaks the line
// there, and a client reads every line break as LF. Stored normalised, an
// event's data is the same string over SSE and over /ws. Data without CR is
// returned as it is.
func NormalizeData(data []byte) []byte {
	if bytes.IndexByte(data, '\r') < 0 {
		return data
	}
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		c := data[i]
		if c == '\r' {
			c = '\n'
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
		}
		out = append(out, c)
	}
	return out
}

// TopicEvent is the event that publishing data under the event name name
// appends: a JSON string is sent as the text it holds, any other JSON value
// as compact JSON. Missing or null data is EINVALID; the name is checked
// by Pass.Publish.
func TopicEvent(name string, data json.RawMessage) (sluice.Event, error) {
	if len(data) == 0 || string(data) == "null" {
		return sluice.Event{}, invalid("data", "missing_required_parameter", "Missing required parameter: 'data'.")
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
