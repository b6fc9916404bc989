package client_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

func TestMain(m *testing.M) { testenv.RunWithoutLeaks(m, http.DefaultClient) }

// fast is a retry policy for tests: reconnects come at once, and a
// stream with no progress gives up soon.
var fast = client.RetryPolicy{InitialDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}

// newClient returns a Client of baseURL with its own connections, closed
// when the test ends.
func newClient(t *testing.T, baseURL string, retry client.RetryPolicy) *client.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &client.Client{BaseURL: baseURL, HTTPClient: &http.Client{Transport: tr}, Retry: retry}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func chatRequest(content string) client.ChatRequest {
	return client.ChatRequest{Model: "demo", Messages: []client.Message{{Role: "user", Content: content}}}
}

// event is what a transcript compares: an event's ID and data.
type event struct{ id, data string }

// readDeltas ranges over s to its end, and returns its chunks as events
// and the error it ended with.
func readDeltas(s *client.Stream) ([]event, string, error) {
	var got []event
	var text strings.Builder
	for d, err := range s.Deltas() {
		if err != nil {
			return got, text.String(), err
		}
		got = append(got, event{d.EventID, string(d.Chunk)})
		text.WriteString(d.Content)
	}
	return got, text.String(), nil
}

// whole reads the stream id from the start, straight from the server, in
// one connection: the uninterrupted transcript, without its final [DONE]
// (a Stream hands that over as the end of its range), and the ID of that.
func whole(t *testing.T, srv *testenv.Server, id string) (evs []event, doneID string) {
	t.Helper()
	all := testenv.Events(t, srv.Get(t, "/v1/streams/"+id), -1)
	if len(all) == 0 || all[len(all)-1].Data != "[DONE]" {
		t.Fatalf("the uninterrupted read of %s did not end with [DONE]: %d events", id, len(all))
	}
	return events(all[:len(all)-1]), all[len(all)-1].ID
}

func events(evs []sse.Event) []event {
	out := make([]event, len(evs))
	for i, ev := range evs {
		out[i] = event{ev.ID, ev.Data}
	}
	return out
}

// sameTranscript reports how got differs from want, or "".
func sameTranscript(got, want []event) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("event %d is %+v, uninterrupted %+v", i, got[i], want[i])
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d events, uninterrupted %d", len(got), len(want))
	}
	return ""
}
