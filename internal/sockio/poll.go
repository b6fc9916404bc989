package sockio

// Events say what a Poller reports.
type Events int

const (
	// HangUp reports a socket whose client has closed its end (or reset
	// it): for a transport that never reads its sockets (SSE).
	HangUp Events = iota
	// Readable reports a socket with bytes to read, as well as one hung
	// up on: for a transport that reads its clients' messages (WebSocket).
	Readable
)
