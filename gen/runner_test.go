package gen_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/memory"
)

// TestMain fails the run if any goroutine outlives the tests: every
// generation must end, however it is stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pacedModel is a model whose pace the test sets: after the role it emits
// one token per string sent on tokens, and finishes when tokens is closed.
// It stops when its context is done, as a model must.
type pacedModel struct{ tokens chan string }

func newPaced() pacedModel { return pacedModel{tokens: make(chan string)} }

func (m pacedModel) Stream(ctx context.Context, _ *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	if err := emit(sluice.Delta{Role: "assistant"}); err != nil {
		return sluice.Usage{}, err
	}
	var u sluice.Usage
	for {
		select {
		case tok, ok := <-m.tokens:
			if !ok {
				return u, emit(sluice.Delta{FinishReason: "stop"})
			}
			if err := emit(sluice.Delta{Content: tok}); err != nil {
				return u, err
			}
			u.CompletionTokens++
		case <-ctx.Done():
			return u, ctx.Err()
		}
	}
}

func newRunner(t *testing.T, opts gen.Options) *gen.Runner {
	t.Helper()
	store := memory.New(memory.Options{})
	opts.Store = store
	r := gen.NewRunner(opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // stop whatever a failed test left running, at once
		_ = r.Shutdown(ctx)
		store.Close()
	})
	return r
}

var chat = &sluice.ChatRequest{Model: "paced", Stream: true,
	Messages: []sluice.Message{{Role: "user", Content: json.RawMessage(`"hi"`)}}}

func start(t *testing.T, r *gen.Runner, owner string, m sluice.Model) *gen.Generation {
	t.Helper()
	g, err := r.StartFor(owner, chat, m)
	if err != nil {
		t.Fatalf("start for %q: %v", owner, err)
	}
	return g
}

// readToEnd reads l from its start until its ending event.
func readToEnd(t *testing.T, l sluice.Log) []sluice.Event {
	t.Helper()
	evs, err := read(l, nil)
	if err != nil {
		t.Fatalf("reading %s: %v", l.Name(), err)
	}
	return evs
}

// read reads l from its start until its ending event, calling each (when
// set) with what it has read so far after every read.
func read(l sluice.Log, each func(n int)) ([]sluice.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []sluice.Event
	after := ""
	for {
		evs, err := l.Read(ctx, after, make([]sluice.Event, 0, 16))
		for _, ev := range evs {
			out = append(out, sluice.Event{ID: ev.ID, Name: ev.Name, Data: append([]byte(nil), ev.Data...), End: ev.End})
			after = ev.ID
		}
		if errors.Is(err, io.EOF) || err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return out, err
		}
		if each != nil {
			each(len(out))
		}
	}
}

// wantEnd checks that the last of evs ends the log as end, with data that
// holds want.
func wantEnd(t *testing.T, evs []sluice.Event, end sluice.End, want string) {
	t.Helper()
	if len(evs) == 0 {
		t.Fatal("no events")
	}
	last := evs[len(evs)-1]
	if last.End != end || !strings.Contains(string(last.Data), want) {
		t.Fatalf("last event %s %q, want %s with %q", last.End, last.Data, end, want)
	}
}

func wantCode(t *testing.T, err error, code, kind string) {
	t.Helper()
	var e *sluice.Error
	if !errors.As(err, &e) || e.Code != code || e.Kind != kind {
		t.Fatalf("error %v, want %s (%s)", err, code, kind)
	}
}

// TestCancelEndsTheLogForEveryReader: a reader that waits on a generation
// and one that comes after both get the cancellation event; cancelling
// what is not running reports false.
func TestCancelEndsTheLogForEveryReader(t *testing.T) {
	r := newRunner(t, gen.Options{})
	m := newPaced()
	g := start(t, r, "", m)
	m.tokens <- "one"

	// A reader that has read the role and the token waits for more.
	caughtUp := make(chan struct{})
	var once sync.Once
	waiting := make(chan []sluice.Event, 1)
	go func() {
		evs, _ := read(g.Log, func(n int) {
			if n >= 2 {
				once.Do(func() { close(caughtUp) })
			}
		})
		waiting <- evs
	}()
	<-caughtUp
	if !r.Cancel(g.ID) {
		t.Fatal("Cancel of a running generation reported false")
	}
	wantEnd(t, <-waiting, sluice.EndCancelled, `"code":"cancelled"`)
	evs := readToEnd(t, g.Log)
	wantEnd(t, evs, sluice.EndCancelled, `"code":"cancelled"`)
	if !strings.Contains(string(evs[1].Data), `"one"`) {
		t.Fatalf("the token before the cancel is missing: %q", evs[1].Data)
	}
	wantCode(t, g.Err(), sluice.ECANCELLED, "cancelled")
	if r.Cancel(g.ID) {
		t.Error("Cancel of an ended generation reported true")
	}
	if r.Cancel("no-such-generation") {
		t.Error("Cancel of an unknown generation reported true")
	}
	if n := r.Running(); n != 0 {
		t.Errorf("%d running after the cancel", n)
	}
}

// TestPerOwnerLimit: an owner at its limit is refused, another owner is
// not, anonymous generations count only against MaxConcurrent, and a
// finished generation frees its owner's place.
func TestPerOwnerLimit(t *testing.T) {
	r := newRunner(t, gen.Options{MaxPerOwner: 1})
	ann := newPaced()
	g := start(t, r, "ann", ann)
	_, err := r.StartFor("ann", chat, newPaced())
	wantCode(t, err, sluice.ERATELIMIT, "too_many_generations_for_key")
	bob := newPaced()
	start(t, r, "bob", bob)
	anon1, anon2 := newPaced(), newPaced()
	start(t, r, "", anon1)
	start(t, r, "", anon2)

	close(ann.tokens)
	<-g.Done()
	wantEnd(t, readToEnd(t, g.Log), sluice.EndDone, "[DONE]")
	again := newPaced()
	start(t, r, "ann", again)
	for _, m := range []pacedModel{bob, anon1, anon2, again} {
		close(m.tokens)
	}
}

// TestMaxConcurrent: past MaxConcurrent running generations a new one is
// refused as the node being busy, until one of them ends.
func TestMaxConcurrent(t *testing.T) {
	r := newRunner(t, gen.Options{MaxConcurrent: 2})
	a, b := newPaced(), newPaced()
	ga := start(t, r, "ann", a)
	start(t, r, "bob", b)
	_, err := r.StartFor("carol", chat, newPaced())
	wantCode(t, err, sluice.EUNAVAILABLE, "too_many_generations")
	if n := r.Running(); n != 2 {
		t.Fatalf("%d running, want 2", n)
	}
	close(a.tokens)
	<-ga.Done()
	c := newPaced()
	start(t, r, "carol", c)
	close(b.tokens)
	close(c.tokens)
}

// TestShutdownKeepsToItsGrace: Shutdown refuses new generations at once,
// lets a running one finish while the grace lasts, and ends the rest with
// the shutdown error event when it is over; then nothing runs (and
// TestMain sees no goroutine left).
func TestShutdownKeepsToItsGrace(t *testing.T) {
	r := newRunner(t, gen.Options{})
	finishing, stuck := newPaced(), newPaced()
	gf := start(t, r, "", finishing)
	gs := start(t, r, "", stuck)

	grace, endGrace := context.WithCancel(context.Background())
	defer endGrace()
	shut := make(chan error, 1)
	go func() { shut <- r.Shutdown(grace) }()

	// Shutdown sends no signal that it has begun: try until a start is
	// refused. A model with its tokens closed ends at once if admitted.
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := newPaced()
		close(done.tokens)
		g, err := r.StartFor("", chat, done)
		if err != nil {
			wantCode(t, err, sluice.EUNAVAILABLE, "server_shutting_down")
			break
		}
		<-g.Done()
		if time.Now().After(deadline) {
			t.Fatal("Shutdown never refused a new generation")
		}
	}

	finishing.tokens <- "last words"
	close(finishing.tokens)
	<-gf.Done()
	wantEnd(t, readToEnd(t, gf.Log), sluice.EndDone, "[DONE]")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a generation still running in its grace", err)
	default:
	}

	endGrace()
	if err := <-shut; !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown after the grace: %v, want the grace's error", err)
	}
	wantEnd(t, readToEnd(t, gs.Log), sluice.EndError, `"code":"server_shutting_down"`)
	wantCode(t, gs.Err(), sluice.EUNAVAILABLE, "server_shutting_down")
	if n := r.Running(); n != 0 {
		t.Fatalf("%d running after Shutdown", n)
	}
}

// TestShutdownWithNothingRunningReturnsAtOnce needs no grace at all.
func TestShutdownWithNothingRunningReturnsAtOnce(t *testing.T) {
	r := newRunner(t, gen.Options{})
	m := newPaced()
	close(m.tokens)
	<-start(t, r, "", m).Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
