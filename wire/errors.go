package wire

import (
	"encoding/json"
	"errors"

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

// errorTypes maps Sluice's error codes onto OpenAI's error types.
var errorTypes = map[string]string{
	sluice.EINVALID:      "invalid_request_error",
	sluice.ENOTFOUND:     "invalid_request_error",
	sluice.ECONFLICT:     "invalid_request_error",
	sluice.EUNAUTHORIZED: "authentication_error",
	sluice.EFORBIDDEN:    "permission_error",
	sluice.ETOOLARGE:     "invalid_request_error",
	sluice.ERATELIMIT:    "rate_limit_error",
	sluice.EUNAVAILABLE:  "server_error",
	sluice.EUPSTREAM:     "upstream_error",
	sluice.ECANCELLED:    "cancelled",
	sluice.EINTERNAL:     "server_error",
}

// Error returns the error object for err. Only the user message of a
// *sluice.Error is shown; anything else reads "Internal error.".
func Error(err error) ErrorObject {
	code := sluice.ErrorCode(err)
	d := ErrorDetail{Message: sluice.ErrorMessage(err), Type: errorTypes[code]}
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
