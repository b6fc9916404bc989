package api

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
)

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
	h.Set("Access-Control-Expose-Headers", HeaderStreamID+", "+HeaderLastEventID+", "+HeaderConversationID+", "+HeaderMessageID+", Retry-After, Content-Disposition")
	if preflight {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, "+HeaderCancelOnDisconnect)
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

func itoa(n int) string { return strconv.Itoa(n) }
