package sluice

import (
	"errors"
	"fmt"
	"time"
)

// Application error codes. Each maps to one HTTP status and one OpenAI error
// type in a single table (wire/errors.go); nothing else decides statuses.
const (
	EINVALID      = "invalid"      // the request is malformed or breaks a rule
	ENOTFOUND     = "not_found"    // no such stream, topic or model
	ECONFLICT     = "conflict"     // the thing already exists or has ended
	EUNAUTHORIZED = "unauthorized" // no or bad credentials
	EFORBIDDEN    = "forbidden"    // credentials are fine but not for this
	ETOOLARGE     = "too_large"    // a body, event or prompt over its limit
	EFULL         = "full"         // a log holds as many events as it may: the server's limit, not the request's
	ERATELIMIT    = "rate_limited" // the caller is over a rate or concurrency limit
	EUNAVAILABLE  = "unavailable"  // the node is full or shutting down; try again later
	EUPSTREAM     = "upstream"     // the model upstream failed
	ECANCELLED    = "cancelled"    // the operation was cancelled by a client
	EINTERNAL     = "internal"     // a bug or an unexpected failure
)

// Error is an error with an application code and a message fit for users.
// Internal detail belongs in the wrapped error (Err), which is logged and
// never shown.
type Error struct {
	Code    string // one of the E* constants
	Message string // shown to users
	Param   string // the request field at fault, if any
	Kind    string // a finer machine-readable reason, e.g. "model_not_found"
	Err     error  // the underlying cause, for logs
	// RetryAfter, for ERATELIMIT and EUNAVAILABLE, says when trying again
	// may succeed; zero leaves it to the transport.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted user message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, or EINTERNAL
// when there is none. A nil err has no code.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user message of the first *Error in err's chain,
// or a generic message that reveals nothing internal.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// ErrorKind returns the finest reason err gives: the Kind of the first
// *Error in its chain, else that error's Code; EINTERNAL when there is no
// *Error, and "" for nil. Kinds and codes are fixed strings of Sluice's own
// code, never text from a client or an upstream, so they can name a metric's
// label value.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Kind != "" {
			return e.Kind
		}
		return e.Code
	}
	return EINTERNAL
}
