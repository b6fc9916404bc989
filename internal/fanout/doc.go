// Package fanout delivers one log to many readers on one node, without a
// goroutine per reader: the core that the SSE hub (package hub) and the
// WebSocket transport (package ws) share, each adding only its wire form
// and what its connections are.
//
// A node holds one Feed per log, however many local readers follow it.
// Each batch of new events is read and encoded once, and the same bytes
// are written to every reader that is up to date ("current"): by the
// appending goroutine itself when a few readers follow the log (a
// generation and its reader), so that each token reaches the socket
// without waking another goroutine, or by the feed's own goroutine (its
// pump) when many do (a topic and its subscribers), so that a publisher
// does not wait on thousands of writes and events that arrive meanwhile
// share one write. With a log that cannot notify (Redis) the pump waits on
// the log itself. A reader that is behind, or too slow to take a write at
// once, leaves the current ones and catches up by reading the log itself
// (with a Batch from this package), then rejoins the feed (Feed.Join). The
// log is the buffer: a slow reader costs at most one pending batch, never
// memory of the feed's, and never holds up the others.
//
// In the flow request → model → log → reader → transport → wire, a Feed is
// the reader a transport renders; it imports the root package only.
package fanout
