package api

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"
)

// HeaderRequestID carries a request's ID: the client's, when it sends a
// sane one, else one the server makes; it is echoed on every response.
const HeaderRequestID = "X-Request-ID"

// RequestObserver is told of every request answered, for metrics. Its
// method must be safe for concurrent use and quick.
type RequestObserver interface {
	// Answered counts a request: route is the pattern that served it
	// ("" when none did) and status the status it was answered with.
	Answered(route string, status int)
}

type nopRequests struct{}

func (nopRequests) Answered(string, int) {}

// requestID returns the client's request ID when it is sane (1 to 128
// letters, digits and "-_.:/+=@", so that it cannot break a log line or a
// header), else a new one: 16 random bytes in hex. It names a request in
// logs; it is no secret, so math/rand's generator does.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := given[i]
			ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
				c == '-' || c == '_' || c == '.' || c == ':' || c == '/' || c == '+' || c == '=' || c == '@'
		}
		if ok {
			return given
		}
	}
	var b [32]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	const hex = "0123456789abcdef"
	for i := range 16 {
		b[i], b[16+i] = hex[hi>>(60-4*i)&15], hex[lo>>(60-4*i)&15]
	}
	return string(b[:])
}

// access is one request's access log record, and the ResponseWriter that
// counts what its handler writes. A stream handed to the hub is logged
// when it ends, with the bytes the hub wrote: the handler and the hub each
// hold a reference (refs), and whichever lets go last writes the line.
type access struct {
	http.ResponseWriter
	id     string
	start  time.Time
	method string
	path   string
	addr   string
	route  string // the pattern that served it; "" when none did
	key    string // the API key's name, once the caller is known
	status int
	bytes  int64
	stream string       // the stream's ID (Sluice-Stream-ID), once the handler returned
	hub    atomic.Int64 // bytes the hub wrote, when it took the connection over
	refs   atomic.Int32
}

type accessKey struct{}

// accessOf returns the access record of a request that Server.ServeHTTP
// serves, or nil.
func accessOf(r *http.Request) *access {
	a, _ := r.Context().Value(accessKey{}).(*access)
	return a
}

func (a *access) WriteHeader(status int) {
	if a.status == 0 || a.status < 200 {
		a.status = status
	}
	a.ResponseWriter.WriteHeader(status)
}

func (a *access) Write(b []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	n, err := a.ResponseWriter.Write(b)
	a.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush,
// deadlines, hijacking).
func (a *access) Unwrap() http.ResponseWriter { return a.ResponseWriter }

// handOver tells a that the hub may take its connection over; done, which
// the hub must call once the stream has ended, writes the line if the
// handler has returned. keep, called when the hub did not take it, undoes
// handOver.
func (s *Server) handOver(a *access) (done func(), keep func()) {
	if a == nil {
		return func() {}, func() {}
	}
	a.refs.Add(1)
	a.status = http.StatusOK // the hub writes the head: 200
	return func() { s.release(a) }, func() {
		a.status = 0
		a.refs.Add(-1)
	}
}

// done is release for the handler, which returned: the record lets go of
// the ResponseWriter, which holds the request and its buffers, so that a
// stream the hub serves costs its record alone until it ends.
func (s *Server) done(a *access) {
	a.stream = a.Header().Get(HeaderStreamID)
	a.ResponseWriter = nil
	s.release(a)
}

// release lets go of a; the last one to let go writes its line.
func (s *Server) release(a *access) {
	if a.refs.Add(-1) == 0 {
		s.logAccess(a)
	}
}

// logAccess writes a's access log line and counts the request.
func (s *Server) logAccess(a *access) {
	status := a.status
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing
	}
	s.requests.Answered(a.route, status)
	if s.cfg.NoAccessLog || !s.log.Enabled(context.Background(), s.cfg.AccessLogLevel) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", a.method), slog.String("route", a.route), slog.String("path", a.path),
		slog.Int("status", status), slog.Int64("bytes", a.bytes+a.hub.Load()),
		slog.Duration("duration", time.Since(a.start)), slog.String("key", a.key),
		slog.String("addr", a.addr), slog.String("request_id", a.id),
	}
	if a.stream != "" {
		attrs = append(attrs, slog.String("stream_id", a.stream))
	}
	s.log.LogAttrs(context.Background(), s.cfg.AccessLogLevel, "request", attrs...)
}
