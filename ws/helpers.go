package ws

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
)

// polled is a context that is already done, to make Log.Read poll.
var polled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// topicName is what a topic may be called: the rule of api/topics.go, so
// that both transports reach the same topics.
var topicName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// openTopic returns the log behind a topic, creating it on first use.
func (c *conn) openTopic(name string) (sluice.Log, error) {
	if name == "" {
		return nil, invalid("topic", "missing_required_parameter", "Missing required parameter: 'topic'.")
	}
	if !topicName.MatchString(name) {
		return nil, invalid("topic", "invalid_topic",
			"A topic name is 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit.")
	}
	return c.h.opts.Store.Open(c.ctx, "topic/"+name, true, sluice.LogOptions{MaxLen: c.h.opts.TopicMaxLen, Ring: true})
}

func invalid(param, kind, msg string) error {
	return &sluice.Error{Code: sluice.EINVALID, Param: param, Kind: kind, Message: msg}
}

// badJSON explains why a message is not a valid request.
func badJSON(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return &sluice.Error{Code: sluice.EINVALID, Param: typ.Field, Kind: "invalid_type", Err: err,
			Message: "Invalid type for '" + typ.Field + "'."}
	}
	return &sluice.Error{Code: sluice.EINVALID, Kind: "invalid_json", Err: err,
		Message: "We could not parse the JSON message: " + err.Error() + "."}
}

// truncate shortens a client-given string quoted back in a message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
