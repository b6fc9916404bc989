package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice"
)

var errEmptyBody = errors.New("the body is empty")

// readBody reads the whole request body, refusing more than max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		return nil, bodyError(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, bodyError(errEmptyBody)
	}
	return b, nil
}

// decodeJSON reads the body as one JSON value into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	b, err := readBody(w, r, max)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return bodyError(err)
	}
	return nil
}

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
// are *sluice.Error values that name the field at fault.
func DecodeChat(body []byte) (*sluice.ChatRequest, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, bodyError(err)
	}
	var b chatBody
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, bodyError(err)
	}
	if b.Model == nil || strings.TrimSpace(*b.Model) == "" {
		return nil, invalid("model", "missing_required_parameter", "You must provide a model parameter.")
	}
	if len(b.Messages) == 0 {
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
	for _, mt := range []*int{b.MaxTokens, b.MaxCompletionTokens} {
		if mt != nil {
			if *mt < 1 {
				return nil, invalid("max_tokens", "invalid_value", "'max_tokens' must be at least 1.")
			}
			req.MaxTokens = *mt
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
				fmt.Sprintf("Invalid type for '%s.%s': expected %s.", param, typ.Field, describeType(typ.Type.Kind().String())))
		}
		return m, bodyError(err)
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
