package sluice

import "context"

// requestIDKey is the context key of a request ID.
type requestIDKey struct{}

// WithRequestID returns a copy of ctx that carries id, the ID of the client
// request that asked for the work done under ctx. Transports give every
// request one; the work it starts (a generation, a call upstream) carries it
// into its own log lines, so that an operator can follow one request across
// them.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request ID that ctx carries, or "" when none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
