package admit

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluice-dev/sluice"
)

// Limits bound what one client and the whole node may use. Zero fields are
// no limit.
type Limits struct {
	RequestsPerMinute int // API operations per API key, or per client address when there are no keys
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

// limiter keeps the counters behind Limits.
type limiter struct {
	limits Limits

	mu       sync.Mutex
	buckets  map[string]*rate.Limiter // token buckets by key name or address
	streams  int
	perAddr  map[string]int
	lastTrim time.Time
}

func newLimiter(l Limits) *limiter {
	return &limiter{limits: l, buckets: make(map[string]*rate.Limiter), perAddr: make(map[string]int)}
}

// allow takes one operation from who's budget. golang.org/x/time/rate is
// the Go team's token bucket: a burst of a minute's worth, refilled evenly.
func (g *limiter) allow(who string) error {
	rpm := g.limits.RequestsPerMinute
	if rpm <= 0 {
		return nil
	}
	now := time.Now()
	g.mu.Lock()
	b := g.buckets[who]
	if b == nil {
		g.trimBuckets(now)
		b = rate.NewLimiter(rate.Limit(float64(rpm)/60), rpm)
		g.buckets[who] = b
	}
	g.mu.Unlock()
	if b.AllowN(now, 1) {
		return nil
	}
	wait := time.Duration(float64(time.Minute) / float64(rpm))
	if r := b.ReserveN(now, 1); r.OK() {
		wait = r.DelayFrom(now)
		r.CancelAt(now)
	}
	return &sluice.Error{Code: sluice.ERATELIMIT, Kind: "rate_limit_exceeded", RetryAfter: wait,
		Message: "Too many requests: this server takes " + itoa(rpm) + " a minute from one client. Try again shortly."}
}

// trimBuckets forgets full buckets (clients quiet for a minute), so that
// many client addresses cannot grow the map without bound.
func (g *limiter) trimBuckets(now time.Time) {
	if len(g.buckets) < 1024 || now.Sub(g.lastTrim) < time.Minute {
		return
	}
	g.lastTrim = now
	for who, b := range g.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(g.buckets, who)
		}
	}
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
