// Package client is the Go client of Sluice: chat answers that resume by
// themselves across dropped connections, attach after a restart, cancel,
// topics to follow and publish to, and the model list.
//
// Sluice keeps every answer as a log whose events carry IDs; a reader that
// comes back with the last ID it saw gets exactly what follows. A Stream
// and a Subscription do that for their caller: when a connection drops, or
// carries nothing (not even a heartbeat) for RetryPolicy.IdleTimeout, they
// reconnect after a backoff with jitter, no longer than the server's
// retry: asks, and the caller's loop sees one unbroken sequence of events.
// They stop on the stream's final event, when the server says there is no
// more (204) or that the stream is gone (404, ErrExpired), on a refusal
// that waiting would not change, and after RetryPolicy.MaxAttempts
// reconnects in a row that brought nothing (ErrDisconnected).
//
// The package reads event streams with Sluice's own parser (package sse)
// and uses nothing else but the standard library, so that depending on it
// brings in nothing more. It starts no goroutine of its own.
//
//	c := &client.Client{BaseURL: "http://127.0.0.1:8080"}
//	s, err := c.Chat(ctx, client.ChatRequest{Model: "demo", Messages: []client.Message{{Role: "user", Content: "Hi"}}})
//	if err != nil { … }
//	for d, err := range s.Deltas() {
//		if err != nil { … }
//		fmt.Print(d.Content)
//	}
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is where a Client with no BaseURL finds Sluice: the
// address `sluice serve` listens on by default.
const DefaultBaseURL = "http://127.0.0.1:8080"

// Client talks to one Sluice server. Its zero value talks to
// DefaultBaseURL with http.DefaultClient and the default retry policy. A
// Client is safe for concurrent use; its fields must not change while it
// is in use.
type Client struct {
	// BaseURL is the server's root, e.g. "https://sluice.example.com"
	// (the API's paths, /v1/…, are appended to it).
	BaseURL string
	// APIKey, when set, is sent as Authorization: Bearer.
	APIKey string
	// Header holds more headers for every request.
	Header http.Header
	// HTTPClient sends the requests; nil means http.DefaultClient. It must
	// have no Timeout, which would cut every stream at that age: bound a
	// call with its context instead.
	HTTPClient *http.Client
	// Retry says how streams reconnect.
	Retry RetryPolicy
}

// RetryPolicy says how a stream reconnects after its connection drops.
// Zero fields take the defaults named.
type RetryPolicy struct {
	// InitialDelay is the wait before the first reconnect (250ms); each
	// reconnect in a row without an event doubles it, up to MaxDelay, and
	// waits between half and all of that (jitter), so that many clients
	// cut at once do not come back at once.
	InitialDelay time.Duration
	// MaxDelay bounds the wait (10s). The server's retry: lowers it.
	MaxDelay time.Duration
	// MaxAttempts is how many reconnects in a row may bring no event before
	// the stream gives up with ErrDisconnected: 0 means 12 for a chat
	// stream and no limit for a subscription; a negative value, no limit.
	MaxAttempts int
	// IdleTimeout is how long a connection may carry nothing, not even a
	// heartbeat, before it is given up and another is opened (45s; Sluice
	// sends heartbeats every 15s by default).
	IdleTimeout time.Duration
	// OnRetry, when set, is called before each reconnect's wait with the
	// attempt (1, 2, … in a row without an event), the wait and why the
	// last connection ended. It is called on the goroutine that reads.
	OnRetry func(attempt int, delay time.Duration, reason error)
}

// Defaults of RetryPolicy.
const (
	DefaultInitialDelay    = 250 * time.Millisecond
	DefaultMaxDelay        = 10 * time.Second
	DefaultChatMaxAttempts = 12
	DefaultIdleTimeout     = 45 * time.Second
)

// withDefaults returns p with its zero fields filled in; unlimited
// attempts become -1.
func (p RetryPolicy) withDefaults(maxAttempts int) RetryPolicy {
	if p.InitialDelay <= 0 {
		p.InitialDelay = DefaultInitialDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = maxAttempts
	}
	if p.IdleTimeout <= 0 {
		p.IdleTimeout = DefaultIdleTimeout
	}
	return p
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// newRequest builds a request to path; a non-nil body is sent as JSON.
func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range c.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if c.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.APIKey)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends a request that answers JSON and decodes a 2xx answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return responseError(resp)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID          string `json:"id"`
	Object      string `json:"object"`
	Created     int64  `json:"created"`
	OwnedBy     string `json:"owned_by"`
	Description string `json:"description,omitempty"`
}

// Models returns the models the server offers.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	var list struct {
		Data []Model `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/models", nil, &list); err != nil {
		return nil, err
	}
	return list.Data, nil
}

// Cancel stops the generation of stream id, and returns how the stream
// ended: "cancelled", or "done" or "error" if it had ended already. Its
// readers get its closing event (an error event with the code
// "cancelled"). Only the key that started a stream may cancel it.
func (c *Client) Cancel(ctx context.Context, id string) (status string, err error) {
	var out struct {
		Status string `json:"status"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/streams/"+url.PathEscape(id)+"/cancel", nil, &out); err != nil {
		return "", err
	}
	return out.Status, nil
}

// Publish sends one event to a topic's subscribers and returns its ID.
// name may be "" (subscribers see no event name). data is sent as JSON: a
// string reaches subscribers as that text, any other value as its JSON
// (a json.RawMessage as it is).
func (c *Client) Publish(ctx context.Context, topic, name string, data any) (id string, err error) {
	in := struct {
		Event string `json:"event,omitempty"`
		Data  any    `json:"data"`
	}{name, data}
	var out struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/events", in, &out); err != nil {
		return "", err
	}
	return out.ID, nil
}
