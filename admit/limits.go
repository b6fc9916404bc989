package admit

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
)

// Limits bound what one client and the whole node may use. Zero fields are
// no limit.
type Limits struct {
	RequestsPerMinute int // API operations per API key, or per client address when there are no keys
	GenerationsPerKey int // generations one API key runs at once
	MaxMessages       int // messages in one chat request
	MaxPromptBytes    int // bytes of message content in one chat request, as sent (JSON)
	StreamsPerAddr    int // streams open at once from one client address
	MaxStreams        int // streams open at once on this node
}

// checkChat applies the request limits to a decoded chat request. It
// names the limit a request breaks.
func (l Limits) checkChat(req *sluice.ChatRequest) (limit string, err error) {
	if l.MaxMessages > 0 && len(req.Messages) > l.MaxMessages {
		return "max-messages", &sluice.Error{Code: sluice.EINVALID, Param: "messages", Kind: "too_many_messages",
			Message: "Too many messages: this server takes at most " + itoa(l.MaxMessages) + " in one request."}
	}
	if l.MaxPromptBytes > 0 {
		n := 0
		for _, m := range req.Messages {
			n += len(m.Content)
		}
		if n > l.MaxPromptBytes {
			return "max-prompt-bytes", &sluice.Error{Code: sluice.EINVALID, Param: "messages", Kind: "prompt_too_large",
				Message: "The messages are too long: this server takes at most " + itoa(l.MaxPromptBytes) + " bytes of content in one request."}
		}
	}
	return "", nil
}

// limiter keeps the counters behind Limits: the per-key ones in a Counter
// (which may be shared by every node), the stream places of this node here.
type limiter struct {
	limits  Limits
	counter Counter

	mu      sync.Mutex
	streams int
	perAddr map[string]int
}

func newLimiter(l Limits, c Counter) *limiter {
	if c == nil {
		c = newLocalCounter()
	}
	return &limiter{limits: l, counter: c, perAddr: make(map[string]int)}
}

// counterTimeout bounds one question to the counter, so that a shared
// counter that stopped answering refuses requests rather than holding them.
const counterTimeout = 2 * time.Second

// allow takes one operation from who's budget: ERATELIMIT past it.
func (g *limiter) allow(ctx context.Context, who string) error {
	rpm := g.limits.RequestsPerMinute
	if rpm <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, counterTimeout)
	defer cancel()
	wait, err := g.counter.Take(ctx, who, rpm)
	if err != nil {
		return counterFailed(err)
	}
	if wait > 0 {
		return &sluice.Error{Code: sluice.ERATELIMIT, Kind: "rate_limit_exceeded", RetryAfter: wait,
			Message: "Too many requests: this server takes " + itoa(rpm) + " a minute from one client. Try again shortly."}
	}
	return nil
}

// holdGeneration takes one of key's places for a running generation
// (Limits.GenerationsPerKey), or refuses with ERATELIMIT. release must be
// called once the generation has ended; it is nil when nothing was taken:
// there is no such limit, or no key (callers without one are bounded by
// the node's generation limit only).
func (g *limiter) holdGeneration(ctx context.Context, key string) (release func(), err error) {
	n := g.limits.GenerationsPerKey
	if n <= 0 || key == "" {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, counterTimeout)
	defer cancel()
	release, ok, err := g.counter.Hold(ctx, "gen:"+key, n)
	switch {
	case err != nil:
		return nil, counterFailed(err)
	case !ok:
		return nil, errKeyBusy
	}
	return release, nil
}

var errKeyBusy = &sluice.Error{Code: sluice.ERATELIMIT, Kind: "too_many_generations_for_key", RetryAfter: time.Second,
	Message: "This API key has as many answers running as it may; wait for one to finish."}

// counterFailed is a request refused because the counts of its limits
// could not be read (a shared counter's store is down): the request may
// be tried again shortly, here or on another node.
func counterFailed(err error) error {
	if e := (*sluice.Error)(nil); errors.As(err, &e) {
		return err
	}
	return &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "limits_unavailable", RetryAfter: jitter(time.Second),
		Message: "This server cannot check its limits at the moment; try again shortly.", Err: err}
}

// openStream counts a stream from addr, or refuses it, naming the limit:
// 429 for one address over its share, 503 for a full node. release must be
// called, once, when the stream ends.
func (g *limiter) openStream(addr string) (release func(), limit string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limits.MaxStreams > 0 && g.streams >= g.limits.MaxStreams {
		return nil, "max-streams", &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "server_full", RetryAfter: jitter(5 * time.Second),
			Message: "This server has as many open streams as it can take; try again shortly."}
	}
	if g.limits.StreamsPerAddr > 0 && g.perAddr[addr] >= g.limits.StreamsPerAddr {
		return nil, "max-streams-per-addr", &sluice.Error{Code: sluice.ERATELIMIT, Kind: "too_many_streams", RetryAfter: jitter(2 * time.Second),
			Message: "Too many open streams from your address; close some first."}
	}
	g.streams++
	g.perAddr[addr]++
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.streams--
			if g.perAddr[addr]--; g.perAddr[addr] <= 0 {
				delete(g.perAddr, addr)
			}
		})
	}, "", nil
}

// jitter spreads a Retry-After by up to half again, so that clients refused
// together do not all come back at once.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

func itoa(n int) string { return strconv.Itoa(n) }
