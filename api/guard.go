package api

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/hub"
)

// Limits bound what one client and the whole node may use. Zero fields are
// no limit.
type Limits struct {
	RequestsPerMinute int // per API key, or per client address when there are no keys
	MaxMessages       int // messages in one chat request
	MaxPromptBytes    int // bytes of message text in one chat request
	StreamsPerAddr    int // streams open at once from one client address
	MaxStreams        int // streams open at once on this node
}

// CheckChat applies the request limits to a decoded chat request.
func (l Limits) CheckChat(req *sluice.ChatRequest) error {
	if l.MaxMessages > 0 && len(req.Messages) > l.MaxMessages {
		return &sluice.Error{Code: sluice.EINVALID, Param: "messages", Kind: "too_many_messages",
			Message: "Too many messages: this server takes at most " + itoa(l.MaxMessages) + " in one request."}
	}
	if l.MaxPromptBytes > 0 {
		n := 0
		for _, m := range req.Messages {
			n += len(m.Content)
		}
		if n > l.MaxPromptBytes {
			return &sluice.Error{Code: sluice.EINVALID, Param: "messages", Kind: "prompt_too_large",
				Message: "The messages are too long: this server takes at most " + itoa(l.MaxPromptBytes) + " bytes of content in one request."}
		}
	}
	return nil
}

// guard keeps the counters behind Limits.
type guard struct {
	limits Limits

	mu       sync.Mutex
	buckets  map[string]*rate.Limiter // token buckets by key name or address
	streams  int
	perAddr  map[string]int
	lastTrim time.Time
}

func newGuard(l Limits) *guard {
	return &guard{limits: l, buckets: make(map[string]*rate.Limiter), perAddr: make(map[string]int)}
}

// allow takes one request from who's budget. golang.org/x/time/rate is the
// Go team's token bucket: a burst of a minute's worth, refilled evenly.
func (g *guard) allow(who string, now time.Time) error {
	rpm := g.limits.RequestsPerMinute
	if rpm <= 0 {
		return nil
	}
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
func (g *guard) trimBuckets(now time.Time) {
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

// openStream counts a stream from addr, or refuses it: 429 for one address
// over its share, 503 for a full node. release must be called, once, when
// the stream ends.
func (g *guard) openStream(addr string) (release func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limits.MaxStreams > 0 && g.streams >= g.limits.MaxStreams {
		return nil, &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "server_full", RetryAfter: hub.Jitter(5 * time.Second),
			Message: "This server has as many open streams as it can take; try again shortly."}
	}
	if g.limits.StreamsPerAddr > 0 && g.perAddr[addr] >= g.limits.StreamsPerAddr {
		return nil, &sluice.Error{Code: sluice.ERATELIMIT, Kind: "too_many_streams", RetryAfter: hub.Jitter(2 * time.Second),
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
	}, nil
}

// clientAddr is the address a request came from, without its port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func retryAfterSeconds(d time.Duration) string {
	return itoa(int(math.Max(1, math.Ceil(d.Seconds()))))
}

// The security headers of every response. The UI's script and style come
// from this server only, so the policy can forbid inline script and every
// other origin.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func setSecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
}

// cors answers a preflight request and adds the CORS headers to a
// cross-origin request from an allowed origin. It reports whether the
// request has been answered. Credentials (cookies) are never allowed:
// Sluice authenticates with bearer keys, which need none.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	allowed, any := false, false
	for _, o := range s.cfg.CORSOrigins {
		if o == "*" {
			allowed, any = true, true
		} else if strings.EqualFold(o, origin) {
			allowed = true
		}
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if !allowed {
		if preflight {
			writeError(w, r, s.log, &sluice.Error{Code: sluice.EFORBIDDEN, Kind: "origin_not_allowed",
				Message: "Requests from origin " + origin + " are not allowed."})
			return true
		}
		return false
	}
	if any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	h.Set("Access-Control-Expose-Headers", HeaderStreamID+", Retry-After")
	if preflight {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, "+HeaderCancelOnDisconnect)
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
