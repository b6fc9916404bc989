package admit

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice"
)

type namedUpstream struct{ plainModel }

func (namedUpstream) Upstream() string { return "ollama" }

// TestAHeldModelStillNamesItsUpstream: holding a key's place around a model
// must not hide which upstream serves it from the generation's log line.
func TestAHeldModelStillNamesItsUpstream(t *testing.T) {
	released := 0
	held := heldModel{Model: namedUpstream{}, release: func() { released++ }}
	if got := held.Upstream(); got != "ollama" {
		t.Fatalf("Upstream() = %q, want the held model's", got)
	}
	if got := (heldModel{Model: plainModel{}}).Upstream(); got != "" {
		t.Fatalf("a model with no upstream: Upstream() = %q, want empty", got)
	}
	if _, err := held.Stream(context.Background(), &sluice.ChatRequest{}, func(sluice.Delta) error { return nil }); err != nil || released != 1 {
		t.Fatalf("Stream: %v, released %d times, want once", err, released)
	}
}

type plainModel struct{}

func (plainModel) Stream(context.Context, *sluice.ChatRequest, func(sluice.Delta) error) (sluice.Usage, error) {
	return sluice.Usage{}, nil
}
