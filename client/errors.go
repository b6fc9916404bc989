package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Error is an error that Sluice reported: an HTTP status with its
// OpenAI-style error object, or an error event that ended a stream
// (StatusCode 0). Message, Type, Param and Code are the object's fields.
type Error struct {
	StatusCode int // the HTTP status; 0 for an error event in a stream
	Message    string
	Type       string
	Param      string
	Code       string // e.g. "cancelled", "not_found", "rate_limit_exceeded", "upstream_reset"
	// RetryAfter is how long the server asked the caller to wait before
	// trying again (Retry-After), or 0.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	s := "sluice: " + e.Message
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.StatusCode != 0 {
		s += " [HTTP " + strconv.Itoa(e.StatusCode) + "]"
	}
	return s
}

// Is reports whether the error is ErrCancelled: an error event with the
// code "cancelled".
func (e *Error) Is(target error) bool {
	return target == ErrCancelled && e.Code == "cancelled"
}

var (
	// ErrCancelled is what a chat stream ends with when its generation was
	// cancelled (by Stream.Cancel, Client.Cancel or anyone who may). The
	// error is an *Error, with the server's message.
	ErrCancelled = errors.New("sluice: the generation was cancelled")
	// ErrExpired is what a chat stream ends with, wrapped beside the
	// server's *Error, when the server no longer keeps it (404 on attach or
	// resume): the rest of the answer cannot be read.
	ErrExpired = errors.New("sluice: the stream is no longer kept on the server")
	// ErrDisconnected is what a stream ends with, wrapped beside the last
	// failure, when it could not reconnect within RetryPolicy.MaxAttempts.
	ErrDisconnected = errors.New("sluice: the connection stayed down")
)

// errorObject is the body of an error response, and an error event's data.
type errorObject struct {
	Error *struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// toError returns the *Error of o, or nil if o holds none.
func (o *errorObject) toError(status int) *Error {
	if o.Error == nil {
		return nil
	}
	e := &Error{StatusCode: status, Message: o.Error.Message, Type: o.Error.Type}
	if o.Error.Param != nil {
		e.Param = *o.Error.Param
	}
	if o.Error.Code != nil {
		e.Code = *o.Error.Code
	}
	return e
}

// maxErrorBody bounds what is read of an error response.
const maxErrorBody = 64 << 10

// responseError returns the *Error that a response with an error status
// stands for. It reads the body but does not close it.
func responseError(resp *http.Response) *Error {
	var o errorObject
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := (*Error)(nil)
	if json.Unmarshal(body, &o) == nil {
		e = o.toError(resp.StatusCode)
	}
	if e == nil {
		e = &Error{StatusCode: resp.StatusCode, Message: fmt.Sprintf("HTTP %s", resp.Status)}
	}
	e.RetryAfter = retryAfter(resp.Header)
	return e
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, time.Until(t))
	}
	return 0
}
