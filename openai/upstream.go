// Package openai is Sluice's client of OpenAI-compatible chat servers
// (OpenAI, Ollama, vLLM, llama.cpp's server, or another Sluice). Its Model is
// a sluice.Model: it forwards a chat request to an Upstream with stream:true,
// reads the upstream's Server-Sent Events as they arrive, and emits them as
// deltas, which the generation runner writes into the log. In the flow
// request → model → log → reader → transport, this package is a model: it
// knows HTTP towards the upstream, and nothing of logs or of Sluice's own
// clients.
//
// An upstream's faults never reach a reader as a silently truncated answer.
// Before the first delta is emitted, transient failures (no connection,
// 429, 5xx, no first event in time) are retried with backoff within a
// budget, then on the fallback upstream; after it, nothing is replayed and
// Stream fails with an *sluice.Error whose Kind says what happened, so that
// the stream ends with an explicit error event.
package openai

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for UpstreamOptions.
const (
	DefaultConnectTimeout    = 10 * time.Second
	DefaultFirstTokenTimeout = 2 * time.Minute
	DefaultIdleTimeout       = time.Minute
	DefaultMaxAttempts       = 3
	DefaultRetryBudget       = 30 * time.Second
	DefaultRetryDelay        = 250 * time.Millisecond
)

// UpstreamOptions describe one OpenAI-compatible server. Zero durations and
// counts take the defaults above.
type UpstreamOptions struct {
	// Name identifies the upstream in logs and error messages; cmd/sluice
	// also lists it as the owned_by of its models.
	Name string
	// BaseURL is the API root that "/chat/completions" is appended to, such
	// as https://api.openai.com/v1 or http://localhost:11434/v1.
	BaseURL string
	// APIKey, when set, is sent as "Authorization: Bearer <key>".
	APIKey string
	// Headers are sent with every request, after Authorization, so they may
	// replace it (Azure OpenAI wants "api-key" instead).
	Headers map[string]string

	// ConnectTimeout bounds the TCP connection and the TLS handshake.
	ConnectTimeout time.Duration
	// FirstTokenTimeout bounds the time from sending the request to the
	// first event of the answer: an upstream that accepts the request but
	// never starts answering is given up on (and retried, if budget is left).
	FirstTokenTimeout time.Duration
	// IdleTimeout cuts an answer when the upstream sends nothing at all for
	// this long once it has started. Any bytes count, so upstreams that send
	// SSE comments while they think are not cut.
	IdleTimeout time.Duration

	// MaxAttempts is how many times a request is tried before the first
	// token (1 means no retry).
	MaxAttempts int
	// RetryBudget bounds the time spent on those attempts, from the start
	// of the first: no retry is started that would have to wait past it.
	RetryBudget time.Duration
	// RetryDelay is the first backoff; each retry doubles it, up to 16×,
	// and a random half of it is jitter. A Retry-After header from the
	// upstream overrides it when longer.
	RetryDelay time.Duration

	// Fallback, when set, is tried when this upstream fails transiently
	// before the first token and its attempts or budget are spent.
	Fallback *Upstream
}

// Upstream is one OpenAI-compatible server and the connections to it. It is
// safe for concurrent use by any number of Models; Close it when done.
type Upstream struct {
	opts      UpstreamOptions
	endpoint  string
	transport *http.Transport
	client    *http.Client
}

// NewUpstream checks o, fills in its defaults and returns the upstream.
func NewUpstream(o UpstreamOptions) (*Upstream, error) {
	base, err := url.Parse(o.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("openai: upstream %q: base URL %q is not an http or https URL", o.Name, o.BaseURL)
	}
	for name, value := range o.Headers {
		if err := checkHeader(name, value); err != nil {
			return nil, fmt.Errorf("openai: upstream %q: %w", o.Name, err)
		}
	}
	setDefault(&o.ConnectTimeout, DefaultConnectTimeout)
	setDefault(&o.FirstTokenTimeout, DefaultFirstTokenTimeout)
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.RetryBudget, DefaultRetryBudget)
	setDefault(&o.RetryDelay, DefaultRetryDelay)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   o.ConnectTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout: o.ConnectTimeout,
		ForceAttemptHTTP2:   true,
		// Many answers stream at once to one host, each holding its own
		// connection over HTTP/1.1 for as long as it streams. When they end,
		// their connections wait for the next requests: a request on a new
		// connection (a dial, and two goroutines in the Transport) took
		// 0.35 ms longer than on a kept one at p50 and 1.5 ms at p99 on
		// loopback here, and over the network a TLS handshake more. So keep
		// as many as streamed at once, up to a bound; an idle one holds a
		// socket, the Transport's two goroutines and their buffers, and goes
		// after IdleConnTimeout.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		// A compressing upstream or proxy may hold tokens back to fill its
		// blocks; ask for the stream as it is produced.
		DisableCompression: true,
	}
	return &Upstream{
		opts:      o,
		endpoint:  strings.TrimRight(o.BaseURL, "/") + "/chat/completions",
		transport: t,
		// No Client.Timeout: it would cut long answers. The phases are
		// bounded one by one instead (connect, first token, idle).
		client: &http.Client{Transport: t},
	}, nil
}

// Name returns the upstream's name.
func (u *Upstream) Name() string { return u.opts.Name }

// Close closes the upstream's idle connections. Answers still streaming
// keep theirs until they end.
func (u *Upstream) Close() { u.transport.CloseIdleConnections() }

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// checkHeader refuses header names and values that net/http would refuse
// on every request, so that the mistake shows at start instead.
func checkHeader(name, value string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) {
		return fmt.Errorf("header name %q is not a valid HTTP header name", name)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return errors.New("header " + name + " has a line break or NUL in its value")
	}
	return nil
}
