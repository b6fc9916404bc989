package hub

// Observer is told what the hub does with its connections, for metrics. The
// hub calls it from its delivery paths, so its methods must be safe for
// concurrent use, and must neither block, lock nor allocate: Delivered is
// called for every batch of events written.
type Observer interface {
	// Opened and Closed bracket each connection the hub serves; topic
	// tells a topic subscription from a generation's reader.
	Opened(topic bool)
	Closed(topic bool)
	// Delivered counts events written to connections: n is a batch's
	// events times the connections it was written to.
	Delivered(n int)
	// CutSlow counts a connection dropped for reading too slowly: reason
	// is "lagging" (it trailed the stream by Options.MaxLag events and was
	// told to resume) or "write_timeout" (it took no bytes for the write
	// timeout).
	CutSlow(reason string)
}

// Reasons CutSlow gives.
const (
	CutLagging      = "lagging"
	CutWriteTimeout = "write_timeout"
)

// nopObserver is the Observer of a hub given none.
type nopObserver struct{}

func (nopObserver) Opened(bool)    {}
func (nopObserver) Closed(bool)    {}
func (nopObserver) Delivered(int)  {}
func (nopObserver) CutSlow(string) {}
