package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/bench"
	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestBenchRefusesBadFlagsBeforeLoadingAnything(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--url", "http://10.1.2.3:8080"}, "--url"},
		{[]string{"--url", "http://example.com:80"}, "loopback"},
		{[]string{"--transports", "sse,smoke"}, "--transports"},
		{[]string{"--scenarios", "everything"}, "--scenarios"},
		{[]string{"--idle", "10,-5"}, "--idle"},
		{[]string{"--conns-per-worker", "30000"}, "--conns-per-worker"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--conv-gens", "0"}, "--conv-gens"},
		{[]string{"--conv-rounds", "0"}, "--conv-rounds"},
		{[]string{"--database-url", "mysql://db/x"}, "--database-url"},
	} {
		err := run(context.Background(), append([]string{"bench"}, tc.args...), io.Discard, io.Discard, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}

func TestBenchFromRendersASavedResult(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "r.json")
	saved := `{"demo_tps":50,"capacity":[{"server":"sluice","transport":"sse","bound_ms":50,"tps":50,"points":[` +
		`{"gens":10,"tokens_per_second":500,"itl":{"n":100,"p99_ms":30}},{"gens":20,"tokens_per_second":600,"itl":{"n":100,"p99_ms":30}}]}]}`
	if err := os.WriteFile(in, []byte(saved), 0o644); err != nil {
		t.Fatal(err)
	}
	md, png := filepath.Join(dir, "r.md"), filepath.Join(dir, "r.png")
	var out strings.Builder
	if err := run(context.Background(), []string{"bench", "--from", in, "--markdown", md, "--chart", png}, &out, io.Discard, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	// 20 generations delivered 600 of the 1,000 tokens due: not within the pace.
	if !strings.Contains(string(b), "at most **10** generations") || !strings.Contains(out.String(), "at most 10 generations") {
		t.Fatalf("markdown:\n%s\ntable:\n%s", b, out.String())
	}
	if _, err := os.Stat(png); err != nil {
		t.Fatal(err)
	}
}

// mainEnv, set in its environment, makes the test binary the whole
// `sluice` command (see TestMain): what `sluice bench` starts (serve,
// bench-baseline, bench-worker) is then this binary, as built for the test.
const mainEnv = "SLUICE_TEST_MAIN"

func runMain(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, args, os.Stdout, os.Stderr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "sluice:", err)
		return 2
	}
	return 0
}

// TestBenchConversationsMeasuresEverySideAndTheirWrites runs the
// conversations scenario at a small size, PostgreSQL included: every side
// completes its chats and is timed, the model's own time to first token is
// taken out of each, and the sides that keep a conversation report the
// writes each chat cost, as the servers' /metrics counted them: its
// messages once, its answer in batches (at most one a second) and at its
// end.
func TestBenchConversationsMeasuresEverySideAndTheirWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers, workers and PostgreSQL")
	}
	t.Setenv(mainEnv, "1") // the servers and workers the bench starts are this binary
	dbURL := testenv.StartPostgresServer(t).NewDatabase(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const think, tps = 100 * time.Millisecond, 100 // 250 tokens: 2.5 s an answer
	cfg := bench.Config{
		Exe: exe, WorkerCommand: []string{exe, "bench-worker"}, DemoTTFT: think, DemoTPS: tps,
		Transports: []string{"sse"}, Scenarios: []string{"conversations"}, ConvGens: []int{12}, ConvRounds: 2,
		DatabaseURL: dbURL, ConnsPerWorker: 4, Duration: 3 * time.Minute,
	}
	res, err := bench.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Conversations) != 1 {
		t.Fatalf("conversation runs: %+v", res.Conversations)
	}
	run := res.Conversations[0]
	var names []string
	for _, s := range run.Sides {
		names = append(names, s.Name)
	}
	want := []string{"model directly", "off", "sqlite", "sqlite, conversation", "postgres", "postgres, conversation"}
	if !slices.Equal(names, want) {
		t.Fatalf("sides %q, want %q", names, want)
	}
	answer := 250 * time.Second / tps
	for _, s := range run.Sides {
		counted := uint64(s.Gens * run.Rounds)
		if s.Gens != 2 || s.Failed != 0 || s.Completed != int64(s.Gens*(run.Rounds+1)) || s.Added.N != counted || s.TTFT.N != counted {
			t.Errorf("%s: want every chat completed and timed: %+v", s.Name, s)
			continue
		}
		// Loose bounds: a token every 10 ms on average (a loaded reader
		// takes several at once, so not at the median), and the model's
		// 100 ms of thinking taken out of the time to first token.
		if s.ITL.Mean < 5 || s.ITL.Mean > 50 || s.TTFT.P50 < ms(think) || s.Added.P50 <= 0 || s.Added.P50 >= ms(think) {
			t.Errorf("%s: ITL %+v, TTFT %+v, less the model's own %+v", s.Name, s.ITL, s.TTFT, s.Added)
		}
		w := s.Writes
		if !s.Conversation {
			if w != nil {
				t.Errorf("%s keeps no conversation, but writes were counted: %+v", s.Name, w)
			}
			continue
		}
		if w == nil || w.Generations != s.Completed || w.NotRecorded != 0 || w.Failed != 0 {
			t.Errorf("%s: writes %+v for %d chats", s.Name, w, s.Completed)
			continue
		}
		most := answer.Seconds() + 1
		if w.ByOperation["create_conversation"] != 1 || w.ByOperation["add_items"] != 1 || w.Batches < 1 || w.Batches > most ||
			!near(w.ByOperation["update_message"], w.Batches+1) || !near(w.PerGeneration, 1+w.ByOperation["update_message"]+w.ByOperation["touch"]) {
			t.Errorf("%s: per generation %+v; want a conversation made, its messages added once, 1 to %.1f batches and the end", s.Name, w, most)
		}
	}
	var table, md strings.Builder
	res.PrintTable(&table)
	res.Markdown(&md)
	for _, out := range []string{table.String(), md.String()} {
		if !strings.Contains(out, "postgres, conversation") || !strings.Contains(out, "add_items 1.00") {
			t.Errorf("the conversations table is missing:\n%s", out)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// near compares per-generation figures, quotients of counts.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
