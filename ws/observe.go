package ws

// Observer is told what the WebSocket transport does with its
// subscriptions, for metrics. Its methods must be safe for concurrent use
// and must neither block, lock nor allocate: Delivered is called for every
// batch of events sent.
type Observer interface {
	// Opened and Closed bracket each subscription (a stream a connection
	// follows); topic tells a topic subscription from a generation's.
	Opened(topic bool)
	Closed(topic bool)
	// Delivered counts events queued to connections.
	Delivered(n int)
	// CutSlow counts a connection closed for reading too slowly: reason
	// is CutSendBufferFull.
	CutSlow(reason string)
}

// CutSendBufferFull is the reason CutSlow gives: the connection's send
// buffer stayed full for the write timeout.
const CutSendBufferFull = "send_buffer_full"

type nopObserver struct{}

func (nopObserver) Opened(bool)    {}
func (nopObserver) Closed(bool)    {}
func (nopObserver) Delivered(int)  {}
func (nopObserver) CutSlow(string) {}
