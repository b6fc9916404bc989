package wire

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/sluice-dev/sluice"
)

// ErrorObject is the body of an OpenAI-style error: {"error": {...}}.
type ErrorObject struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorObject.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// codes maps each of Sluice's error codes to the HTTP status and the OpenAI
// error type it is answered with: the one table that decides them, for
// every transport (the SSE API answers with the status, /ws logs it).
var codes = map[string]struct {
	status int
	typ    string
}{
	sluice.EINVALID:      {http.StatusBadRequest, "invalid_request_error"},
	sluice.ENOTFOUND:     {http.StatusNotFound, "invalid_request_error"},
	sluice.ECONFLICT:     {http.StatusConflict, "invalid_request_error"},
	sluice.EUNAUTHORIZED: {http.StatusUnauthorized, "authentication_error"},
	sluice.EFORBIDDEN:    {http.StatusForbidden, "permission_error"},
	sluice.ETOOLARGE:     {http.StatusRequestEntityTooLarge, "invalid_request_error"},
	// A full log is the server's limit, met by an answer longer than it
	// keeps: nothing the client can fix by changing its request's form, so
	// not an invalid request. 507 is "cannot store what the request needs".
	sluice.EFULL:        {http.StatusInsufficientStorage, "server_error"},
	sluice.ERATELIMIT:   {http.StatusTooManyRequests, "rate_limit_error"},
	sluice.EUNAVAILABLE: {http.StatusServiceUnavailable, "server_error"},
	sluice.EUPSTREAM:    {http.StatusBadGateway, "upstream_error"},
	sluice.ECANCELLED:   {499, "cancelled"}, // client closed request, as nginx names it
	sluice.EINTERNAL:    {http.StatusInternalServerError, "server_error"},
}

// Status returns the HTTP status that err is answered with: that of its
// code, 500 for an error with no code it knows.
func Status(err error) int {
	if c, ok := codes[sluice.ErrorCode(err)]; ok {
		return c.status
	}
	return http.StatusInternalServerError
}

// DefaultRetryAfter is the wait suggested with a status that invites a
// retry when the error names none.
const DefaultRetryAfter = time.Second

// RetryAfter returns how long a client refused with err should wait before
// trying again: the error's own RetryAfter, else DefaultRetryAfter, for the
// statuses that invite a retry (429, 503); zero for the others.
func RetryAfter(err error) time.Duration {
	if s := Status(err); s != http.StatusTooManyRequests && s != http.StatusServiceUnavailable {
		return 0
	}
	var e *sluice.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		return e.RetryAfter
	}
	return DefaultRetryAfter
}

// Error returns the error object for err. Only the user message of a
// *sluice.Error is shown; anything else reads "Internal error.".
func Error(err error) ErrorObject {
	code := sluice.ErrorCode(err)
	d := ErrorDetail{Message: sluice.ErrorMessage(err), Type: codes[code].typ}
	if d.Type == "" {
		d.Type = "server_error"
	}
	kind := code
	var e *sluice.Error
	if errors.As(err, &e) {
		if e.Param != "" {
			p := e.Param
			d.Param = &p
		}
		if e.Kind != "" {
			kind = e.Kind
		}
	}
	d.Code = &kind
	return ErrorObject{Error: d}
}

// ErrorJSON returns the error object for err, encoded.
func ErrorJSON(err error) []byte {
	b, _ := json.Marshal(Error(err)) // strings only: cannot fail
	return b
}
