package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/wire"
)

// requestBody encodes the upstream request: the client's messages and
// every field Sluice does not interpret, byte for byte, with the upstream's
// model name, stream:true, and usage asked for (so that it can be logged and
// passed on even when the client did not ask for it).
func requestBody(model string, req *sluice.ChatRequest) []byte {
	b := make([]byte, 0, 512)
	b = append(b, `{"model":`...)
	b = wire.AppendString(b, model)
	b = append(b, `,"messages":[`...)
	for i, m := range req.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		raw := m.Raw
		if len(raw) == 0 { // a request built in Go rather than decoded
			raw, _ = json.Marshal(m) // strings and raw JSON: cannot fail
		}
		b = append(b, raw...)
	}
	b = append(b, `],"stream":true,"stream_options":{"include_usage":true}`...)
	keys := make([]string, 0, len(req.Extra))
	for k := range req.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same request gives the same bytes
	for _, k := range keys {
		b = append(b, ',')
		b = wire.AppendString(b, k)
		b = append(b, ':')
		b = append(b, req.Extra[k]...)
	}
	return append(b, '}')
}

// newRequest returns the POST of body to u, with its headers.
func (u *Upstream) newRequest(ctx context.Context, body []byte) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, u.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "text/event-stream")
	r.Header.Set("User-Agent", "sluice")
	if u.opts.APIKey != "" {
		r.Header.Set("Authorization", "Bearer "+u.opts.APIKey)
	}
	for k, v := range u.opts.Headers {
		r.Header.Set(k, v)
	}
	return r, nil
}

// statusFailure turns a non-2xx answer into an outcome. The upstream's own
// message is shown when it is about the client's request; when it is about
// Sluice's credentials or configuration, it goes to the log only.
func (u *Upstream) statusFailure(resp *http.Response) outcome {
	msg := upstreamMessage(io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	status := strconv.Itoa(code) + " " + http.StatusText(code)
	detail := &upstreamError{upstream: u.Name(), status: code, message: msg}
	who := say(u)
	switch {
	case code == http.StatusTooManyRequests:
		return outcome{transient: true, retryAfter: retryAfter(resp.Header), err: &sluice.Error{
			Code: sluice.ERATELIMIT, Kind: "upstream_rate_limited", Err: detail,
			Message: who + "is rate limiting Sluice: " + msg}}
	case code == http.StatusRequestTimeout || code >= 500:
		return outcome{transient: true, retryAfter: retryAfter(resp.Header), err: &sluice.Error{
			Code: sluice.EUPSTREAM, Kind: "upstream_unavailable", Err: detail,
			Message: who + "failed with " + status + ": " + msg}}
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_unauthorized", Err: detail,
			Message: who + "refused Sluice's credentials (" + status + "); the operator should check its API key."}}
	case code == http.StatusNotFound:
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_not_found", Err: detail,
			Message: who + "answered " + status + ": " + msg}}
	case code == http.StatusRequestEntityTooLarge:
		return outcome{err: &sluice.Error{Code: sluice.ETOOLARGE, Kind: "upstream_too_large", Err: detail,
			Message: who + "refused the request as too large: " + msg}}
	case code >= 400:
		return outcome{err: &sluice.Error{Code: sluice.EINVALID, Kind: "upstream_invalid_request", Err: detail,
			Message: who + "refused the request (" + status + "): " + msg}}
	}
	return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_bad_response", Err: detail,
		Message: who + "answered " + status + " instead of a stream."}}
}

// upstreamError is the detail of an upstream's refusal, for logs.
type upstreamError struct {
	upstream string
	status   int
	message  string
}

func (e *upstreamError) Error() string {
	return "upstream " + e.upstream + ": " + strconv.Itoa(e.status) + ": " + e.message
}

// upstreamMessage finds the message in an error body, whichever dialect it
// is in: OpenAI's {"error":{"message"}}, {"error":"..."} (Ollama, some
// proxies), {"message"} (vLLM) or {"detail"} (FastAPI); else the text.
func upstreamMessage(r io.Reader) string {
	b, _ := io.ReadAll(r)
	var v struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  json.RawMessage `json:"detail"`
	}
	msg := ""
	if json.Unmarshal(b, &v) == nil {
		msg = errorText(v.Error)
		if msg == "" {
			msg = v.Message
		}
		if msg == "" {
			msg = errorText(v.Detail)
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(b))
	}
	if msg == "" {
		return "no message."
	}
	return clip(msg, 500)
}

// errorText returns the message of an error value: a string, or an object
// with a message field.
func errorText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var o struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &o) == nil && o.Message != "" {
		return o.Message
	}
	if len(raw) > 0 && string(raw) != "null" {
		return string(raw)
	}
	return ""
}

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// retryAfter reads the wait an upstream asks for: OpenAI's retry-after-ms,
// or Retry-After in seconds or as an HTTP date. Zero means none.
func retryAfter(h http.Header) time.Duration {
	if ms, err := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := h.Get("Retry-After")
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
