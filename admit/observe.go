package admit

import (
	"context"

	"github.com/sluice-dev/sluice"
)

// Observer is told what the gate decides, for metrics. Its methods must be
// safe for concurrent use and quick.
type Observer interface {
	// Refused counts a refused operation: limit names the bound that
	// refused it (the flag that sets it: "api-keys", "rate-limit",
	// "max-streams", "max-streams-per-addr", "max-messages",
	// "max-prompt-bytes") and reason the error's kind (sluice.ErrorKind).
	Refused(limit, reason string)
	// Resumed counts a reader that resumed after an event ID it named;
	// gap says its place was gone and it was told so with a gap event.
	Resumed(gap bool)
	// Published counts an event published to a topic.
	Published()
}

type nopObserver struct{}

func (nopObserver) Refused(string, string) {}
func (nopObserver) Resumed(bool)           {}
func (nopObserver) Published()             {}

// refuse counts err as a refusal by limit, and returns it.
func (g *Gate) refuse(limit string, err error) error {
	g.obs.Refused(limit, sluice.ErrorKind(err))
	return err
}

// CheckAfter reports whether a reader may start reading l after the event
// ID after, without waiting, as sluice.CheckAfter does: nil when it may,
// io.EOF when l has ended and after is its last event, or the error Poll
// gives for an ID that l never issued. resumed says the client named after
// itself (Last-Event-ID, last_event_id): a reader that may start is then
// counted as a resume, with a gap when its place was gone. Every transport
// checks a reader's start here, so that resumes are counted alike.
func (g *Gate) CheckAfter(ctx context.Context, l sluice.Log, after string, resumed bool) error {
	evs, err := l.Poll(ctx, after, make([]sluice.Event, 0, 1))
	if err == nil && resumed {
		g.obs.Resumed(len(evs) > 0 && evs[0].Name == sluice.GapEvent)
	}
	return err
}
