package gen

import "time"

// Observer is told what generations do, for metrics. Its methods must be
// safe for concurrent use and quick; a Tracker's are called for every token
// from the generation's goroutine, so they must neither lock nor allocate.
type Observer interface {
	// Started is called as a generation of model (a name the server
	// offers) starts; the Tracker it returns follows that generation.
	Started(model string) Tracker
	// Refused counts a generation that was not started: limit names the
	// bound (the flag that sets it, or "shutdown") and reason the error's
	// kind (sluice.ErrorKind).
	Refused(limit, reason string)
}

// Tracker follows one generation.
type Tracker interface {
	// FirstToken is the wait from the start to the first token stored.
	FirstToken(wait time.Duration)
	// NextToken is the gap between a token and the one before.
	NextToken(gap time.Duration)
	// Ended is called once, last, with the end reason: EndDone,
	// EndCancelled, EndShutdown or EndError.
	Ended(reason string)
}

// End reasons a Tracker is told.
const (
	EndDone      = "done"
	EndCancelled = "cancelled"
	EndShutdown  = "shutdown"
	EndError     = "error"
)

type nopObserver struct{}

func (nopObserver) Started(string) Tracker { return nopTracker{} }
func (nopObserver) Refused(string, string) {}

type nopTracker struct{}

func (nopTracker) FirstToken(time.Duration) {}
func (nopTracker) NextToken(time.Duration)  {}
func (nopTracker) Ended(string)             {}
