package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/wire"
)

// statuses maps each error code to its HTTP status: the one place that
// decides them.
var statuses = map[string]int{
	sluice.EINVALID:      http.StatusBadRequest,
	sluice.ENOTFOUND:     http.StatusNotFound,
	sluice.ECONFLICT:     http.StatusConflict,
	sluice.EUNAUTHORIZED: http.StatusUnauthorized,
	sluice.EFORBIDDEN:    http.StatusForbidden,
	sluice.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	sluice.ERATELIMIT:    http.StatusTooManyRequests,
	sluice.EUNAVAILABLE:  http.StatusServiceUnavailable,
	sluice.EUPSTREAM:     http.StatusBadGateway,
	sluice.ECANCELLED:    499, // client closed request, as nginx names it
	sluice.EINTERNAL:     http.StatusInternalServerError,
}

// retryAfter is the Retry-After sent with statuses that invite a retry.
const retryAfter = 1

func statusOf(err error) int {
	if s, ok := statuses[sluice.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// writeError answers with err as an OpenAI-style error object. Internal
// detail goes to the log only.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	status := statusOf(err)
	if status >= 500 {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		after := time.Duration(retryAfter) * time.Second
		var e *sluice.Error
		if errors.As(err, &e) && e.RetryAfter > 0 {
			after = e.RetryAfter
		}
		w.Header().Set("Retry-After", retryAfterSeconds(after))
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

// routeError is the answer for a path or method Sluice does not serve.
func routeError(r *http.Request) error {
	return &sluice.Error{Code: sluice.ENOTFOUND, Kind: "unknown_url",
		Message: "Unknown request URL: " + r.Method + " " + r.URL.Path + "."}
}

// bodyError turns a failure to read or decode a JSON body into a clear
// error for the client.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &sluice.Error{Code: sluice.ETOOLARGE, Kind: "request_too_large", Err: err,
			Message: "The request body is larger than " + strconv.FormatInt(tooBig.Limit, 10) + " bytes."}
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return &sluice.Error{Code: sluice.EINVALID, Param: field, Kind: "invalid_type", Err: err,
			Message: "Invalid type for '" + field + "': expected " + describeType(typ.Type.Kind().String()) + ", got " + typ.Value + "."}
	case errors.As(err, &syntax), errors.Is(err, errEmptyBody):
		return &sluice.Error{Code: sluice.EINVALID, Kind: "invalid_json", Err: err,
			Message: "We could not parse the JSON body of your request: " + err.Error() + "."}
	}
	return &sluice.Error{Code: sluice.EINVALID, Kind: "invalid_json", Err: err,
		Message: "We could not read the JSON body of your request."}
}

func describeType(kind string) string {
	switch kind {
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	}
	return "a " + kind
}
