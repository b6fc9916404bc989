package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/wire"
)

// writeError answers with err as an OpenAI-style error object, with the
// status that wire's one table gives its code. Internal detail goes to the
// log only.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := wire.Status(err)
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "request_id", sluice.RequestID(r.Context()), "err", err)
	} else {
		log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "request_id", sluice.RequestID(r.Context()), "err", err)
	}
	if after := wire.RetryAfter(err); after > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(after))
	}
	if sluice.ErrorCode(err) == sluice.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	writeJSON(w, status, wire.Error(err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, wire.ErrorJSON(err)
	}
	writeRaw(w, status, b)
}

// writeRaw answers with b, a JSON document.
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// routeError is the answer for a path Sluice does not serve.
func routeError(r *http.Request) error {
	return &sluice.Error{Code: sluice.ENOTFOUND, Kind: "unknown_url",
		Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + "."}
}

// errMethod is the answer for a path Sluice serves, asked with a method it
// does not serve there (405, with Allow).
var errMethod = errors.New("method not allowed")

// allowedMethods returns the methods that r's path is served with, probing
// the routes with each; none means an unknown path. GET routes serve HEAD
// too, as net/http's mux does.
func (s *Server) allowedMethods(r *http.Request) []string {
	var allow []string
	probe := r.Clone(r.Context())
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	return allow
}

// writeMethodError answers a request for a known path with a method not
// served there: 405 with Allow and an OpenAI-style error object.
func writeMethodError(w http.ResponseWriter, r *http.Request, log *slog.Logger, allow []string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", http.StatusMethodNotAllowed, "request_id", sluice.RequestID(r.Context()), "err", errMethod)
	writeJSON(w, http.StatusMethodNotAllowed, wire.Error(&sluice.Error{Code: sluice.EINVALID, Kind: "method_not_allowed",
		Message: "Method " + r.Method + " is not allowed on " + r.URL.Path + " (allowed: " + strings.Join(allow, ", ") + ")."}))
}

// bodyError turns a failure to read or decode a JSON body into a clear
// error for the client.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &sluice.Error{Code: sluice.ETOOLARGE, Kind: "request_too_large", Err: err,
			Message: "The request body is larger than " + strconv.FormatInt(tooBig.Limit, 10) + " bytes."}
	case errors.Is(err, errEmptyBody):
		return &sluice.Error{Code: sluice.EINVALID, Kind: "invalid_json", Err: err,
			Message: "We could not parse the JSON body of your request: " + err.Error() + "."}
	}
	return admit.JSONError(err)
}
