// Package demo is Sluice's built-in "demo" model: a sluice.Model that needs no
// network, no weights and no configuration, so that `sluice` streams answers
// out of the box. It is not a language model and says so in every reply.
//
// A reply is a canned Markdown answer assembled from phrase banks, chosen by
// a seed derived from the request: the same messages and seed give the same
// tokens on every machine, and different prompts give visibly different
// replies. Each reply says it comes from the demo model, quotes the start of
// the user's last message, and carries what a chat UI must render:
// paragraphs, a list, **bold**, *emphasis*, `inline code`, a link, a fenced Go
// code block, CJK, accented letters and an emoji. The text is cut into
// token-like pieces (words with their leading space, punctuation, newlines)
// that never split a rune, and streamed at a set pace, like a real model.
//
// Conveniences, keyed on whole words of the last user message, in any case:
//   - "short" gives a one-line reply of about 20 tokens, for tests;
//   - "long" gives a reply of about 2000 tokens, for load tests;
//   - otherwise a reply is about 250 tokens.
//
// In the flow request → model → log → reader → transport, this package is a
// model: it only calls emit, and knows nothing of logs or HTTP.
package demo

import (
	"context"
	"math"
	"time"

	"github.com/sluice-dev/sluice"
)

// Options set the demo model's pace. The zero Options is the fastest model:
// no pause, no pacing, no cap, which is what tests and benchmarks want; the
// sluice command sets a human pace from its flags.
type Options struct {
	// TimeToFirstToken is the pause ("thinking") between the role delta and
	// the first content token. Zero or negative means no pause.
	TimeToFirstToken time.Duration
	// TokensPerSecond is the pace of content tokens after the first. Zero,
	// negative, NaN or infinite means as fast as emit accepts them; a pace
	// below one token an hour is taken as one an hour.
	TokensPerSecond float64
	// MaxTokens caps the number of content tokens of every reply; a reply
	// cut short ends with finish reason "length". Zero or negative means no
	// cap beyond the reply itself. A request's max_tokens caps it further.
	MaxTokens int
}

// Model is the demo model. It holds no state between requests and is safe
// for concurrent use.
type Model struct {
	ttft      time.Duration
	interval  float64 // seconds between tokens; 0 means no pacing
	maxTokens int
}

// New returns a demo model with the given options.
func New(opts Options) *Model {
	m := &Model{ttft: max(opts.TimeToFirstToken, 0), maxTokens: max(opts.MaxTokens, 0)}
	if tps := opts.TokensPerSecond; tps > 0 && !math.IsInf(tps, 1) {
		m.interval = min(1/tps, maxInterval)
	}
	return m
}

// maxInterval bounds the seconds between tokens, so that a deadline of a
// long reply at an absurdly slow pace cannot overflow a time.Duration.
const maxInterval = 3600

// created is the fixed creation time reported for the model (2026-01-01
// UTC), so that every node and every restart lists the model identically.
const created = 1767225600

// Info describes the model for GET /v1/models.
func (m *Model) Info() sluice.ModelInfo {
	return sluice.ModelInfo{
		ID:          "demo",
		OwnedBy:     "sluice",
		Created:     created,
		Description: "Sluice's built-in offline demo model. It is not a real LLM: it streams a canned, deterministic Markdown reply that quotes your message, so Sluice works with nothing configured.",
	}
}

// Stream streams the reply to req, following the sluice.Model contract: a
// first delta with the role "assistant", one delta per token, and a last
// delta with the finish reason "stop", or "length" when Options.MaxTokens or
// req.MaxTokens cut the reply short.
//
// Token i is due at start + TimeToFirstToken + i/TokensPerSecond, start being
// the call: deadlines anchored to the start rather than sleeps added up keep
// the average rate exact when single sleeps overshoot, and let a stream catch
// up after a slow emit. Stream returns ctx.Err() promptly when ctx is done,
// and starts no goroutine. Usage counts the prompt with the same tokenizer,
// and the content tokens that emit accepted, also when an error ends the
// stream.
func (m *Model) Stream(ctx context.Context, req *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	start := time.Now()
	var u sluice.Usage
	for _, msg := range req.Messages {
		u.PromptTokens += countTokens(msg.Text())
	}
	u.TotalTokens = u.PromptTokens
	if err := ctx.Err(); err != nil {
		return u, err
	}

	limit := m.maxTokens
	if req.MaxTokens > 0 && (limit == 0 || req.MaxTokens < limit) {
		limit = req.MaxTokens
	}
	var w waiter
	defer w.stop()
	// The role chunk goes out first, before the reply is composed, as a
	// real model's does before it thinks.
	if err := emit(sluice.Delta{Role: "assistant"}); err != nil {
		return u, err
	}
	text := reply(req)
	finish := "stop"
	for i := 0; len(text) > 0; i++ {
		if limit > 0 && i == limit {
			finish = "length"
			break
		}
		due := m.ttft + time.Duration(float64(i)*m.interval*float64(time.Second))
		if err := w.until(ctx, start.Add(due)); err != nil {
			return u, err
		}
		n := nextToken(text)
		if err := emit(sluice.Delta{Content: text[:n]}); err != nil {
			return u, err
		}
		text = text[n:]
		u.CompletionTokens++
		u.TotalTokens++
	}
	return u, emit(sluice.Delta{FinishReason: finish})
}

// waiter sleeps until deadlines with one timer, reused for every token
// rather than one allocated per wait as time.After would.
type waiter struct{ t *time.Timer }

// until returns when t has come, or with ctx's error when ctx is done first.
// It does not block when t is past, but still reports a done ctx, so that a
// stream that cannot keep up, or has no pace, still stops when cancelled.
func (w *waiter) until(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	if w.t == nil {
		w.t = time.NewTimer(d)
	} else {
		// Since Go 1.23 Reset needs no draining: a stopped or fired timer's
		// channel holds no stale value.
		w.t.Reset(d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-w.t.C:
		return nil
	}
}

func (w *waiter) stop() {
	if w.t != nil {
		w.t.Stop()
	}
}
