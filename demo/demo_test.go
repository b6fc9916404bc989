package demo

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/sluice-dev/sluice"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fast streams with no waiting at all.
var fast = Options{}

func msg(role string, content any) sluice.Message {
	b, err := json.Marshal(content)
	if err != nil {
		panic(err)
	}
	return sluice.Message{Role: role, Content: b}
}

func ask(prompt string) *sluice.ChatRequest {
	return &sluice.ChatRequest{Model: "demo", Messages: []sluice.Message{msg("user", prompt)}}
}

// run streams req to the end and returns the deltas.
func run(t *testing.T, m *Model, req *sluice.ChatRequest) ([]sluice.Delta, sluice.Usage) {
	t.Helper()
	var ds []sluice.Delta
	u, err := m.Stream(context.Background(), req, func(d sluice.Delta) error {
		ds = append(ds, d)
		return nil
	})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	return ds, u
}

func text(ds []sluice.Delta) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.Content)
	}
	return b.String()
}

// checkShape checks the delta sequence: the role first, one token per delta,
// and the finish reason last, alone.
func checkShape(t *testing.T, ds []sluice.Delta, finish string) {
	t.Helper()
	if len(ds) < 3 {
		t.Fatalf("only %d deltas", len(ds))
	}
	if !reflect.DeepEqual(ds[0], sluice.Delta{Role: "assistant"}) {
		t.Errorf("first delta %+v, want the role alone", ds[0])
	}
	if last := ds[len(ds)-1]; !reflect.DeepEqual(last, sluice.Delta{FinishReason: finish}) {
		t.Errorf("last delta %+v, want finish reason %q alone", last, finish)
	}
	for i, d := range ds[1 : len(ds)-1] {
		if d.Content == "" || d.Role != "" || d.FinishReason != "" {
			t.Fatalf("delta %d is %+v, want content only", i+1, d)
		}
		if !utf8.ValidString(d.Content) {
			t.Fatalf("delta %d %q is not valid UTF-8", i+1, d.Content)
		}
	}
}

func TestSameRequestGivesSameTokens(t *testing.T) {
	seed := int64(42)
	for _, req := range []*sluice.ChatRequest{
		ask("Hello there"),
		{Messages: []sluice.Message{msg("system", "Be brief."), msg("user", "Tell me about SSE")}, Seed: &seed},
		ask("please be long"),
	} {
		a, _ := run(t, New(fast), req)
		b, _ := run(t, New(Options{MaxTokens: 100000}), req)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("two runs differ:\n%q\n%q", text(a), text(b))
		}
	}
}

// TestRepliesAreStableAcrossVersions pins one reply, so that a change of
// the phrase banks, the generator or the tokenizer is a deliberate one:
// clients' tests may rely on the demo's exact answers. Update the digest
// when you mean to change them.
func TestRepliesAreStableAcrossVersions(t *testing.T) {
	ds, u := run(t, New(fast), ask("Hello there"))
	got := text(ds)
	const want = "c327c57286cc8bdb5a331b788b1a93710756eb4cd243e8724201d7cfdcf1bef7"
	if sum := fmt.Sprintf("%x", sha256.Sum256([]byte(got))); sum != want || u.CompletionTokens != 242 {
		t.Errorf("the reply to %q changed: %d tokens, sha256 %s\n%s", "Hello there", u.CompletionTokens, sum, got)
	}
}

func TestDifferentRequestsGiveDifferentReplies(t *testing.T) {
	one, two := int64(1), int64(2)
	reqs := map[string]*sluice.ChatRequest{
		"a prompt":            ask("What is SSE?"),
		"another prompt":      ask("What is WebSocket?"),
		"a seed":              {Messages: ask("What is SSE?").Messages, Seed: &one},
		"another seed":        {Messages: ask("What is SSE?").Messages, Seed: &two},
		"the next chat turn":  {Messages: []sluice.Message{msg("user", "What is SSE?"), msg("assistant", "..."), msg("user", "What is SSE?")}},
		"a third prompt":      ask("Explain Go channels"),
		"an array of content": {Messages: []sluice.Message{msg("user", []map[string]string{{"type": "text", "text": "What is HTTP/2?"}})}},
	}
	seen := map[string]string{}
	for name, req := range reqs {
		ds, _ := run(t, New(fast), req)
		got := text(ds)
		if other, ok := seen[got]; ok {
			t.Errorf("%s and %s got the same reply:\n%s", name, other, got)
		}
		seen[got] = name
	}
	// Beyond the quoted prompt, the seed alone changes the reply's make-up.
	a, _ := run(t, New(fast), reqs["a seed"])
	b, _ := run(t, New(fast), reqs["another seed"])
	if len(a) == len(b) {
		t.Errorf("seeds 1 and 2 both gave %d deltas; the seed should change the reply itself", len(a))
	}
}

var (
	listItem = regexp.MustCompile(`(?m)^(- |\d+\. )\S`)
	goBlock  = regexp.MustCompile("(?s)\n```go\n[^\n]+\n[^\n]+\n.*?\n```\n")
	bold     = regexp.MustCompile(`\*\*\S[^*\n]*\S\*\*`)
	emphasis = regexp.MustCompile(`(^|[^*])\*\S[^*\n]*\S\*([^*]|$)`)
	code     = regexp.MustCompile("[^`]`[^`\n]+`[^`]")
	link     = regexp.MustCompile(`\[[^]\n]+\]\(https://[^)\s]+\)`)
)

func TestReplyHasWhatAChatUIMustRender(t *testing.T) {
	for _, c := range []struct {
		name  string
		req   *sluice.ChatRequest
		quote string
	}{
		{"a plain prompt", ask("Hello there"), "“Hello there”"},
		{"a long prompt is quoted in part, on one line",
			ask("Tell me\neverything about the history of streaming protocols on the web"), "“Tell me everything about the history…”"},
		{"a unicode prompt", ask("你好, ça va? 🚀"), "“你好, ça va? 🚀”"},
		{"an empty prompt", ask(""), "an empty message"},
		{"no user message", &sluice.ChatRequest{Messages: []sluice.Message{msg("system", "Be nice.")}}, "an empty message"},
		{"an array of content", &sluice.ChatRequest{Messages: []sluice.Message{
			msg("user", []map[string]string{{"type": "text", "text": "Parts "}, {"type": "image_url"}, {"type": "text", "text": "work"}})}},
			"“Parts work”"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds, u := run(t, New(fast), c.req)
			checkShape(t, ds, "stop")
			got := text(ds)
			if u.CompletionTokens < 150 || u.CompletionTokens > 400 {
				t.Errorf("%d tokens, want a typical reply of 150 to 400", u.CompletionTokens)
			}
			first := got[:strings.Index(got, "\n")]
			if !strings.Contains(first, "demo") || !strings.Contains(first, "not a real") || !strings.Contains(first, c.quote) {
				t.Errorf("the first paragraph does not say it is the demo model, not a real LLM, quoting %s:\n%s", c.quote, first)
			}
			for what, re := range map[string]*regexp.Regexp{
				"a list item": listItem, "a fenced Go block of several lines": goBlock, "bold": bold,
				"emphasis": emphasis, "inline code": code, "a link": link,
			} {
				if !re.MatchString(got) {
					t.Errorf("the reply has no %s:\n%s", what, got)
				}
			}
			if !strings.Contains(got, "\n\n") {
				t.Errorf("the reply has one paragraph only:\n%s", got)
			}
			for what, has := range map[string]func(rune) bool{
				"CJK":             func(r rune) bool { return unicode.Is(unicode.Han, r) },
				"accented letter": func(r rune) bool { return unicode.IsLetter(r) && r >= 0xc0 && r < 0x250 },
				"emoji":           func(r rune) bool { return r >= 0x1f300 && r < 0x1fb00 },
			} {
				if !strings.ContainsFunc(got, has) {
					t.Errorf("the reply has no %s:\n%s", what, got)
				}
			}
		})
	}
}

func TestShortAndLongReplies(t *testing.T) {
	for _, c := range []struct {
		prompt   string
		min, max int
		oneLine  bool
	}{
		{"short", 5, 40, true},
		{"Give me a SHORT answer.", 5, 40, true},
		{"a long one, please", 1800, 2600, false},
		{"shortcut and longing are not the words", 150, 400, false},
	} {
		t.Run(c.prompt, func(t *testing.T) {
			ds, u := run(t, New(fast), ask(c.prompt))
			checkShape(t, ds, "stop")
			got := text(ds)
			if u.CompletionTokens < c.min || u.CompletionTokens > c.max {
				t.Errorf("%d tokens, want %d to %d", u.CompletionTokens, c.min, c.max)
			}
			if oneLine := !strings.Contains(got, "\n"); oneLine != c.oneLine {
				t.Errorf("one line: %v, want %v:\n%s", oneLine, c.oneLine, got)
			}
			if !strings.Contains(got, "demo") {
				t.Errorf("the reply does not say it is the demo model:\n%s", got)
			}
		})
	}
}

func TestMaxTokensCutsTheReplyWithFinishReasonLength(t *testing.T) {
	whole, _ := run(t, New(fast), ask("Hello there"))
	n := len(whole) - 2 // content deltas
	for _, c := range []struct {
		name         string
		opt, req     int
		want         int
		wantFinished string
	}{
		{"option", 5, 0, 5, "length"},
		{"request", 0, 7, 7, "length"},
		{"the smaller of both", 9, 4, 4, "length"},
		{"the smaller of both, the other way", 4, 9, 4, "length"},
		{"a cap of exactly the reply's length", n, 0, n, "stop"},
		{"a cap over the reply's length", 0, n + 1, n, "stop"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := ask("Hello there")
			req.MaxTokens = c.req
			ds, u := run(t, New(Options{MaxTokens: c.opt}), req)
			checkShape(t, ds, c.wantFinished)
			if len(ds)-2 != c.want || u.CompletionTokens != c.want {
				t.Errorf("%d content deltas, usage %d, want %d", len(ds)-2, u.CompletionTokens, c.want)
			}
			if !reflect.DeepEqual(ds[:len(ds)-1], whole[:len(ds)-1]) {
				t.Error("the cut reply is not the start of the whole one")
			}
		})
	}
}

func TestUsageCountsPromptAndCompletion(t *testing.T) {
	req := &sluice.ChatRequest{Messages: []sluice.Message{
		msg("system", "Be brief."), // "Be" " brief" "."
		msg("user", "Hello there"), // "Hello" " there"
		msg("assistant", "Hi!"),    // "Hi" "!"
		msg("user", "你好 again"),    // "你" "好" " again"
		{Role: "assistant", Content: json.RawMessage("null")},
	}}
	ds, u := run(t, New(fast), req)
	want := sluice.Usage{PromptTokens: 10, CompletionTokens: len(ds) - 2}
	want.TotalTokens = want.PromptTokens + want.CompletionTokens
	if u != want {
		t.Errorf("usage %+v, want %+v", u, want)
	}
	if n := countTokens(text(ds)); n != u.CompletionTokens {
		t.Errorf("the reply re-tokenizes to %d tokens, usage says %d", n, u.CompletionTokens)
	}
}

func TestCancellationStopsTheStreamPromptly(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   Options
		cancel int  // content tokens to let through before cancelling
		later  bool // cancel while Stream waits, rather than inside emit
	}{
		{"while thinking", Options{TimeToFirstToken: time.Hour}, 0, true},
		{"between paced tokens", Options{TokensPerSecond: 0.001}, 1, true},
		{"with no pace", fast, 5, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := 0
			var cancelled time.Time
			u, err := New(c.opts).Stream(ctx, ask("Hello there"), func(d sluice.Delta) error {
				if d.Content != "" {
					got++
				}
				if got == c.cancel && cancelled.IsZero() {
					if c.later {
						// As a client hanging up would, while Stream sleeps.
						cancelled = time.Now().Add(20 * time.Millisecond)
						time.AfterFunc(20*time.Millisecond, cancel)
					} else {
						cancelled = time.Now()
						cancel()
					}
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if d := time.Since(cancelled); d > time.Second {
				t.Errorf("Stream returned %v after the cancellation", d)
			}
			if got != c.cancel || u.CompletionTokens != got || u.TotalTokens != u.PromptTokens+got {
				t.Errorf("usage %+v after %d tokens, cancelled after %d", u, got, c.cancel)
			}
		})
	}
}

func TestACancelledContextStartsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(fast).Stream(ctx, ask("Hello"), func(sluice.Delta) error {
		t.Fatal("emit called")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestEmitErrorStopsTheStream(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	u, err := New(fast).Stream(context.Background(), ask("Hello there"), func(sluice.Delta) error {
		calls++
		if calls == 4 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || calls != 4 {
		t.Fatalf("err = %v after %d calls, want boom after 4", err, calls)
	}
	if u.CompletionTokens != 2 { // the role, two tokens, then the failed one
		t.Errorf("usage %+v, want 2 completion tokens", u)
	}
}

// TestPaceFollowsTheOptions uses loose bounds: a busy machine may be slow,
// but a paced stream must never be fast.
func TestPaceFollowsTheOptions(t *testing.T) {
	for _, c := range []struct {
		name     string
		opts     Options
		min, max time.Duration
	}{
		// 99 gaps of 5ms after the first token.
		{"200 tokens a second", Options{TokensPerSecond: 200, MaxTokens: 100}, 450 * time.Millisecond, 3 * time.Second},
		{"time to first token", Options{TimeToFirstToken: 300 * time.Millisecond, MaxTokens: 1}, 300 * time.Millisecond, 3 * time.Second},
		{"both", Options{TimeToFirstToken: 100 * time.Millisecond, TokensPerSecond: 100, MaxTokens: 21}, 300 * time.Millisecond, 3 * time.Second},
		{"as fast as possible", Options{TimeToFirstToken: -time.Second, TokensPerSecond: -1}, 0, time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			run(t, New(c.opts), ask("Hello there"))
			if d := time.Since(start); d < c.min || d > c.max {
				t.Errorf("took %v, want %v to %v", d, c.min, c.max)
			}
		})
	}
}

func TestInfoSaysItIsADemo(t *testing.T) {
	i := New(fast).Info()
	if i.ID != "demo" || i.OwnedBy != "sluice" || i.Created == 0 {
		t.Errorf("info %+v", i)
	}
	if !strings.Contains(i.Description, "demo") || !strings.Contains(i.Description, "not a real LLM") {
		t.Errorf("the description does not say plainly what this is: %q", i.Description)
	}
}

func BenchmarkStream(b *testing.B) {
	m := New(Options{})
	req := ask("Hello there, how are you?")
	ctx := context.Background()
	emit := func(sluice.Delta) error { return nil }
	b.ReportAllocs()
	var tokens int
	for b.Loop() {
		u, err := m.Stream(ctx, req, emit)
		if err != nil {
			b.Fatal(err)
		}
		tokens += u.CompletionTokens
	}
	b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
}
