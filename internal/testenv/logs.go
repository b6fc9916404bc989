package testenv

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// Record is one log record, as a Recorder keeps it.
type Record struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string // every attribute, formatted as slog's text handler would
}

// Recorder is a slog.Handler that keeps every record, at every level, for
// tests of what a server logs. It is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	records []Record
}

// Logger returns a logger that writes to r.
func (r *Recorder) Logger() *slog.Logger { return slog.New(r) }

// Records returns the records kept so far whose message is one of msgs
// (all of them with none).
func (r *Recorder) Records(msgs ...string) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for _, rec := range r.records {
		if len(msgs) == 0 || slices.Contains(msgs, rec.Msg) {
			out = append(out, rec)
		}
	}
	return out
}

// Enabled implements slog.Handler: every level is kept.
func (r *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *Recorder) Handle(_ context.Context, rec slog.Record) error {
	out := Record{Level: rec.Level, Msg: rec.Message, Attrs: make(map[string]string)}
	rec.Attrs(func(a slog.Attr) bool {
		out.Attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, out)
	r.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler. The records of the returned handler
// are kept by r, with attrs.
func (r *Recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &withAttrs{r: r, attrs: attrs}
}

// WithGroup implements slog.Handler; groups are flattened.
func (r *Recorder) WithGroup(string) slog.Handler { return r }

type withAttrs struct {
	r     *Recorder
	attrs []slog.Attr
}

func (w *withAttrs) Enabled(context.Context, slog.Level) bool { return true }

func (w *withAttrs) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(w.attrs...)
	return w.r.Handle(ctx, rec)
}

func (w *withAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &withAttrs{r: w.r, attrs: append(append([]slog.Attr(nil), w.attrs...), attrs...)}
}

func (w *withAttrs) WithGroup(string) slog.Handler { return w }
