package gen_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/redis"
)

// TestALogThatCannotBeCreatedFailsStartAndStopsItsModel: the model starts
// while its log is created (see Runner.Start); when the log cannot be
// created (Redis is down), Start reports why, the model is stopped before
// it wrote anything, and the generation gives its place back: the next
// Start of a runner of one place fails for the same reason, not as busy,
// and once Redis is back a generation runs to its end.
func TestALogThatCannotBeCreatedFailsStartAndStopsItsModel(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	store, err := redis.New(ctx, redis.Options{URL: r.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		store.Close()
		testenv.AwaitGoroutinesGone(t, "rueidis.(*call).DelayDo")
	})
	runner := gen.NewRunner(gen.Options{Store: store, MaxConcurrent: 1})
	t.Cleanup(func() { _ = runner.Shutdown(context.Background()) })
	req := &sluice.ChatRequest{Model: "step"}

	r.Stop()
	for i := range 2 {
		m := &testenv.StepModel{Tokens: []string{"never"}, Step: make(chan struct{})}
		g, err := runner.Start(ctx, "", req, m)
		if g != nil || sluice.ErrorCode(err) != sluice.EUNAVAILABLE {
			t.Fatalf("start %d with Redis down: %v, %v; want EUNAVAILABLE", i, g, err)
		}
		if n := runner.Running(); n != 0 {
			t.Fatalf("start %d with Redis down left %d generations running", i, n)
		}
	}

	r.Restart(t)
	testenv.Eventually(t, "a generation to run once Redis is back", func() bool {
		m := &testenv.StepModel{Tokens: []string{"back"}}
		g, err := runner.Start(ctx, "", req, m)
		if err != nil {
			return false
		}
		<-g.Done()
		if err := g.Err(); err != nil {
			t.Fatalf("the generation after Redis came back: %v", err)
		}
		_, end, err := g.Log.Last(ctx)
		if err != nil || end != sluice.EndDone {
			t.Fatalf("its log: %v, %v; want done", end, err)
		}
		return true
	})
}
