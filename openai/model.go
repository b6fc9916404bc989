package openai

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
)

// Options configure a Model.
type Options struct {
	// Upstream serves the model; required.
	Upstream *Upstream
	// Model is the model's name on the upstream, sent as "model".
	Model string
	// FallbackModels names the model on fallback upstreams, by upstream
	// name, for those that call it differently; the others are asked for
	// Model.
	FallbackModels map[string]string
	// Logger receives retries and fallbacks; nil means slog.Default().
	Logger *slog.Logger
	// Observer is told of attempts, retries, fallbacks and failures (for
	// metrics); nil means none.
	Observer Observer
}

// Model is a sluice.Model answered by an upstream (and its fallbacks). It
// holds no state between requests and is safe for concurrent use.
type Model struct {
	routes []route
	log    *slog.Logger
	obs    Observer
}

// route is one upstream to try and the model's name there.
type route struct {
	up    *Upstream
	model string
}

// New returns the model that o describes.
func New(o Options) *Model {
	m := &Model{log: o.Logger, obs: o.Observer}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.obs == nil {
		m.obs = nopObserver{}
	}
	// Upstreams are built fallback first, so the chain cannot loop; the
	// length cap guards against a hand-made one that does.
	for u := o.Upstream; u != nil && len(m.routes) < 16; u = u.opts.Fallback {
		name := o.Model
		if fb, ok := o.FallbackModels[u.opts.Name]; ok && u != o.Upstream {
			name = fb
		}
		m.routes = append(m.routes, route{up: u, model: name})
	}
	return m
}

// Stream asks the upstream for the answer to req and emits it, following
// the sluice.Model contract. Fields of req that Sluice does not interpret
// (req.Extra) are sent unchanged. It fails with an *sluice.Error that says
// what went wrong upstream; when ctx is done it returns at once with ctx's
// error, having closed the upstream request. Usage is the upstream's count
// when it sent one, else the number of pieces emitted, an estimate of the
// completion tokens (upstreams send about one token a chunk).
func (m *Model) Stream(ctx context.Context, req *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	if err := checkRequest(req); err != nil {
		return sluice.Usage{}, err
	}
	c := &call{ctx: ctx, req: req, emit: emit, log: m.log, obs: m.obs}
	var out outcome
	for i, r := range m.routes {
		if i > 0 {
			m.obs.Fallback(m.routes[i-1].up.Name(), r.up.Name())
			m.log.Warn("upstream failed; trying its fallback", "request_id", sluice.RequestID(ctx), "upstream", m.routes[i-1].up.Name(),
				"fallback", r.up.Name(), "err", out.err)
		}
		out = c.try(r)
		if out.err == nil || !out.transient || c.emitted > 0 {
			break
		}
	}
	return c.result(), out.err
}

// Upstream names the upstream the model is asked of first (gen logs it).
func (m *Model) Upstream() string {
	if len(m.routes) == 0 {
		return ""
	}
	return m.routes[0].up.Name()
}

// checkRequest refuses what an upstream would answer but Sluice's deltas
// cannot carry: several choices per request.
func checkRequest(req *sluice.ChatRequest) error {
	raw, ok := req.Extra["n"]
	if !ok {
		return nil
	}
	var n *float64
	if json.Unmarshal(raw, &n) != nil || (n != nil && *n != 1) {
		return &sluice.Error{Code: sluice.EINVALID, Param: "n", Kind: "unsupported_value",
			Message: "Sluice streams one choice per request: 'n' must be 1."}
	}
	return nil
}

// outcome is how one attempt, or all attempts on one upstream, ended.
type outcome struct {
	err error
	// transient says that trying again (later, or elsewhere) may succeed.
	// It is only ever set while nothing has been emitted.
	transient bool
	// retryAfter is the wait the upstream asked for (Retry-After), if any.
	retryAfter time.Duration
}

// try sends the request to r.up until it succeeds, fails for good, emits
// something, or its attempts or budget run out.
func (c *call) try(r route) outcome {
	u := r.up
	body := requestBody(r.model, c.req)
	start := time.Now()
	for n := 1; ; n++ {
		if n > 1 {
			c.obs.Retry(u.Name())
		}
		c.obs.Attempt(u.Name())
		out := c.attempt(u, body)
		if kind := upstreamFault(out.err); kind != "" {
			c.obs.Failed(u.Name(), kind)
		}
		if out.err == nil || !out.transient || c.emitted > 0 {
			return out
		}
		wait := max(backoff(u.opts.RetryDelay, n), out.retryAfter)
		if n >= u.opts.MaxAttempts || time.Since(start)+wait > u.opts.RetryBudget {
			out.err = gaveUp(out.err, n, time.Since(start))
			return out
		}
		c.log.Warn("upstream attempt failed; retrying", "request_id", sluice.RequestID(c.ctx), "upstream", u.Name(), "attempt", n, "wait", wait.Round(time.Millisecond), "err", out.err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return outcome{err: c.ctx.Err()}
		}
	}
}

// backoff returns the wait before retry n (n ≥ 1): base doubled n-1 times,
// at most 16 × base, of which a random half is jitter so that many clients
// failing together do not retry together.
func backoff(base time.Duration, n int) time.Duration {
	d := base << min(n-1, 4)
	half := d / 2
	return half + rand.N(half+1)
}

// gaveUp tells the user that the error is the last of several attempts.
func gaveUp(err error, attempts int, took time.Duration) error {
	se, ok := err.(*sluice.Error)
	if !ok || attempts < 2 {
		return err
	}
	cp := *se
	cp.Message = strings.TrimSuffix(cp.Message, ".") + " (gave up after " + strconv.Itoa(attempts) +
		" attempts in " + took.Round(100*time.Millisecond).String() + ")."
	return &cp
}
