package admit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice"
)

// chatBody is the part of a chat completion request that Sluice reads.
// Pointers tell a missing field from a zero one.
type chatBody struct {
	Model         *string           `json:"model"`
	Messages      []json.RawMessage `json:"messages"`
	Stream        *bool             `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *int   `json:"max_tokens"`
	MaxCompletionTokens *int   `json:"max_completion_tokens"`
	Seed                *int64 `json:"seed"`
}

// interpreted are the fields that Extra leaves out.
var interpreted = map[string]bool{"model": true, "messages": true, "stream": true, "stream_options": true}

var roles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

// DecodeChat parses and validates a chat completion request body. Errors
// are *sluice.Error values that name the field at fault. The extra fields
// of a chat that continues a conversation stay in Extra, for
// Conversations to take out.
func DecodeChat(body []byte) (*sluice.ChatRequest, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, JSONError(err)
	}
	var b chatBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, JSONError(err)
	}
	if b.Model == nil || strings.TrimSpace(*b.Model) == "" {
		return nil, invalid("model", "missing_required_parameter", "You must provide a model parameter.")
	}
	// A chat that continues a conversation may have no messages: it
	// answers the conversation's last user message again (Conversations).
	if _, continues := all[fieldConversation]; len(b.Messages) == 0 && !continues {
		return nil, invalid("messages", "empty_array", "'messages' must be a non-empty array of messages.")
	}
	req := &sluice.ChatRequest{Model: *b.Model, Seed: b.Seed, Extra: make(map[string]json.RawMessage)}
	if b.Stream != nil {
		req.Stream = *b.Stream
	}
	if b.StreamOptions != nil {
		if !req.Stream {
			return nil, invalid("stream_options", "invalid_value", "'stream_options' is only allowed when 'stream' is true.")
		}
		req.IncludeUsage = b.StreamOptions.IncludeUsage
	}
	for _, mt := range []struct {
		name string
		v    *int
	}{{"max_tokens", b.MaxTokens}, {"max_completion_tokens", b.MaxCompletionTokens}} {
		if mt.v != nil {
			if *mt.v < 1 {
				return nil, invalid(mt.name, "invalid_value", "'"+mt.name+"' must be at least 1.")
			}
			req.MaxTokens = *mt.v
		}
	}
	for k, v := range all {
		if !interpreted[k] {
			req.Extra[k] = v
		}
	}
	req.Messages = make([]sluice.Message, len(b.Messages))
	for i, raw := range b.Messages {
		m, err := decodeMessage(i, raw)
		if err != nil {
			return nil, err
		}
		req.Messages[i] = m
	}
	return req, nil
}

func decodeMessage(i int, raw json.RawMessage) (sluice.Message, error) {
	param := fmt.Sprintf("messages[%d]", i)
	var m sluice.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field == "" {
			return m, invalid(param, "invalid_type", fmt.Sprintf("Invalid type for '%s': expected an object.", param))
		}
		if errors.As(err, &typ) {
			return m, invalid(param+"."+typ.Field, "invalid_type",
				fmt.Sprintf("Invalid type for '%s.%s': expected %s.", param, typ.Field, describeType(typ.Type.Kind())))
		}
		return m, JSONError(err)
	}
	m.Raw = raw
	if m.Role == "" {
		return m, invalid(param+".role", "missing_required_parameter", fmt.Sprintf("Missing required parameter: '%s.role'.", param))
	}
	if !roles[m.Role] {
		return m, invalid(param+".role", "invalid_value",
			fmt.Sprintf("Invalid value for '%s.role': %q is not one of system, developer, user, assistant, tool.", param, m.Role))
	}
	switch c := bytes.TrimSpace(m.Content); {
	case len(c) == 0 || string(c) == "null":
		if m.Role != "assistant" {
			return m, invalid(param+".content", "missing_required_parameter",
				fmt.Sprintf("Missing required parameter: '%s.content'.", param))
		}
	case c[0] != '"' && c[0] != '[':
		return m, invalid(param+".content", "invalid_type",
			fmt.Sprintf("Invalid type for '%s.content': expected a string or an array of content parts.", param))
	}
	return m, nil
}

func invalid(param, kind, msg string) error {
	return &sluice.Error{Code: sluice.EINVALID, Param: param, Kind: kind, Message: msg}
}

func compact(b []byte) ([]byte, error) {
	var out bytes.Buffer
	err := json.Compact(&out, b)
	return out.Bytes(), err
}

// JSONError turns a failure to decode a JSON request into a clear error for
// the client: what was expected where, or where the JSON breaks.
func JSONError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		got, isNumber := strings.CutPrefix(typ.Value, "number ")
		if isNumber && isInt(typ.Type.Kind()) {
			// A whole number that does not fit is no type error: say so.
			if f, ferr := strconv.ParseFloat(got, 64); ferr == nil && f == math.Trunc(f) {
				return &sluice.Error{Code: sluice.EINVALID, Param: field, Kind: "invalid_value", Err: err,
					Message: "Invalid value for '" + field + "': " + got + " is out of range."}
			}
		}
		if !isNumber {
			got = describeValue(typ.Value)
		}
		return &sluice.Error{Code: sluice.EINVALID, Param: field, Kind: "invalid_type", Err: err,
			Message: "Invalid type for '" + field + "': expected " + describeType(typ.Type.Kind()) + ", got " + got + "."}
	case errors.As(err, &syntax):
		return &sluice.Error{Code: sluice.EINVALID, Kind: "invalid_json", Err: err,
			Message: "We could not parse the JSON body of your request: " + err.Error() + "."}
	}
	return &sluice.Error{Code: sluice.EINVALID, Kind: "invalid_json", Err: err,
		Message: "We could not read the JSON body of your request."}
}

func isInt(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// describeType names what a Go type expects, in JSON's terms.
func describeType(k reflect.Kind) string {
	switch {
	case isInt(k):
		return "an integer"
	case k == reflect.Float32 || k == reflect.Float64:
		return "a number"
	case k == reflect.Slice || k == reflect.Array:
		return "an array"
	case k == reflect.Struct || k == reflect.Map:
		return "an object"
	case k == reflect.Bool:
		return "a boolean"
	}
	return "a " + k.String()
}

// describeValue names a JSON value's kind as encoding/json reports it
// ("string", "bool", "array", "object", "number").
func describeValue(v string) string {
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "a boolean"
	}
	return "a " + v
}
