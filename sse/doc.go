// Package sse speaks Server-Sent Events, the text/event-stream format of the
// WHATWG HTML standard ("Server-sent events", §9.2).
//
// It is the wire end of Sluice's flow (request → model → log → reader →
// transport → wire): the SSE transport renders each log event with
// AppendEvent, heartbeats with AppendComment and the reconnection delay with
// AppendRetry, into a buffer it reuses, then writes and flushes that buffer
// once per batch. The encoder is exact: whatever bytes it is given, its output
// parses, in any conformant client (EventSource included), into exactly one
// event with the same id, name and data (line breaks read back as \n; the
// few bytes that id and name cannot carry are dropped), and never into
// another field or event.
//
// Reader goes the other way. It parses a stream as the standard's
// "interpreting an event stream" algorithm does, and is what Sluice uses to
// read the SSE streams of upstream models (OpenAI-compatible servers) and,
// in tests, its own output.
//
// The package depends on nothing but the standard library and imports
// nothing of Sluice: it knows bytes and events, not logs.
package sse
