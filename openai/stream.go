package openai

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// call is one Stream call: its state across attempts and upstreams.
type call struct {
	ctx  context.Context
	req  *sluice.ChatRequest
	emit func(sluice.Delta) error
	log  *slog.Logger
	obs  Observer

	emitted  int          // deltas emitted; after the first, nothing is replayed
	role     string       // a role the upstream sent alone, not yet emitted
	pieces   int          // emitted deltas with content, reasoning or tool calls
	usage    sluice.Usage // the upstream's count, once it sent one
	hasUsage bool
}

// result returns the usage to report: the upstream's, or else the pieces
// emitted as an estimate of the completion tokens.
func (c *call) result() sluice.Usage {
	if !c.hasUsage {
		return sluice.Usage{CompletionTokens: c.pieces, TotalTokens: c.pieces}
	}
	u := c.usage
	if u.TotalTokens == 0 {
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	return u
}

// drainTime bounds the wait for the end of a response after [DONE]: reading
// it to its end lets the connection be reused, but an upstream that keeps it
// open must not delay the end of the answer.
const drainTime = 100 * time.Millisecond

// attempt sends body to u once and streams the answer.
func (c *call) attempt(u *Upstream, body []byte) outcome {
	c.role = ""
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	wd := startWatchdog(cancel, u.opts.FirstTokenTimeout, u.opts.IdleTimeout)
	defer wd.stop()

	hreq, err := u.newRequest(ctx, body)
	if err != nil {
		return outcome{err: &sluice.Error{Code: sluice.EINTERNAL, Message: "Internal error.", Err: err}}
	}
	resp, err := u.client.Do(hreq)
	if err != nil {
		return c.sendFailure(ctx, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return u.statusFailure(resp)
	}
	// Some servers answer a request they refuse with a JSON error under 200;
	// an HTML page means a wrong base_url. A stream without a type, or as
	// text/plain, is read all the same: not every server labels it.
	switch mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt {
	case "", "text/event-stream", "text/plain":
	case "application/json":
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_error",
			Message: say(u) + "answered with an error: " + upstreamMessage(io.LimitReader(resp.Body, 64<<10))}}
	default:
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_bad_response",
			Message: say(u) + "answered with " + mt + " instead of an event stream; is its base_url right?"}}
	}
	out := c.read(ctx, u, wd, resp.Body)
	if out.err == nil {
		wd.stop()
		t := time.AfterFunc(drainTime, func() { cancel(nil) })
		defer t.Stop()
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	}
	return out
}

// read reads the answer's events and emits their deltas, until [DONE].
func (c *call) read(ctx context.Context, u *Upstream, wd *watchdog, body io.Reader) outcome {
	rd := sse.NewReader(wd.reader(body))
	finish := ""
	for {
		ev, err := rd.Next()
		if err != nil {
			return c.readFailure(ctx, u, err)
		}
		wd.started()
		if ev.Data == wire.Done {
			return c.done(u, finish)
		}
		if ev.Name != "" && ev.Name != "message" && ev.Name != "error" {
			continue // not part of the OpenAI protocol (e.g. a named ping)
		}
		var ch wire.Chunk
		if err := json.Unmarshal([]byte(ev.Data), &ch); err != nil || ev.Name == "error" || hasValue(ch.Error) {
			return c.upstreamError(u, ev, ch.Error, err)
		}
		if ch.Usage != nil {
			c.usage, c.hasUsage = *ch.Usage, true
		}
		// A last chunk may have no choices at all: it carries only usage.
		for _, choice := range ch.Choices {
			if choice.Index != 0 {
				continue // checkRequest allows one choice; ignore strays
			}
			if f := choice.FinishReason; f != nil && *f != "" {
				// Held back until [DONE]: an answer is not finished until
				// the upstream says its stream is.
				finish = *f
			}
			dd := choice.Delta
			d := sluice.Delta{Role: dd.Role, ReasoningContent: dd.ReasoningContent, ToolCalls: dd.ToolCalls}
			if dd.Content != nil {
				d.Content = *dd.Content
			}
			if d.ReasoningContent == "" { // vLLM's newer name; some send both
				d.ReasoningContent = dd.Reasoning
			}
			if !hasValue(d.ToolCalls) || string(d.ToolCalls) == "[]" {
				d.ToolCalls = nil
			}
			if err := c.send(d); err != nil {
				return outcome{err: err}
			}
		}
	}
}

// send emits d. Only the first delta carries a role (Ollama repeats it on
// every chunk; some servers never send it). A delta with nothing but the
// role is held back until there is something to say: until then no reader
// has seen anything, so a failure may still be retried.
func (c *call) send(d sluice.Delta) error {
	if c.emitted > 0 {
		d.Role = ""
	}
	piece := d.Content != "" || d.ReasoningContent != "" || d.ToolCalls != nil
	if !piece && d.FinishReason == "" {
		if d.Role != "" {
			c.role = d.Role
		}
		return nil
	}
	if c.emitted == 0 && d.Role == "" {
		if c.role != "" { // the upstream sent its role alone; so does Sluice
			if err := c.emit(sluice.Delta{Role: c.role}); err != nil {
				return err
			}
			c.emitted++
		} else {
			d.Role = "assistant"
		}
	}
	if err := c.emit(d); err != nil {
		return err
	}
	c.emitted++
	if piece {
		c.pieces++
	}
	return nil
}

// done ends an answer at [DONE], which is complete only if a finish reason
// came before it.
func (c *call) done(u *Upstream, finish string) outcome {
	if finish == "" {
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_incomplete",
			Message: say(u) + "ended its stream without a finish reason" + c.incomplete()}}
	}
	return outcome{err: c.send(sluice.Delta{FinishReason: finish})}
}

// upstreamError reports an error event, or an event that is not a chunk.
func (c *call) upstreamError(u *Upstream, ev sse.Event, errField json.RawMessage, decodeErr error) outcome {
	if decodeErr != nil && ev.Name != "error" {
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_bad_response", Err: decodeErr,
			Message: say(u) + "sent an event that is not a chat completion chunk" + c.incomplete()}}
	}
	msg := errorText(errField)
	if msg == "" { // an "error" event: its data may be in any dialect
		msg = upstreamMessage(strings.NewReader(ev.Data))
	}
	return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_error",
		Err:     &upstreamError{upstream: u.Name(), status: http.StatusOK, message: ev.Data},
		Message: say(u) + "failed" + c.after() + ": " + clip(msg, 500)}}
}

// sendFailure turns a failure to get a response into an outcome.
func (c *call) sendFailure(ctx context.Context, u *Upstream, err error) outcome {
	if c.ctx.Err() != nil {
		return outcome{err: c.ctx.Err()}
	}
	if context.Cause(ctx) == errNoFirstToken {
		return c.timeout(u)
	}
	var cert *tls.CertificateVerificationError
	if errors.As(err, &cert) {
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_tls", Err: err,
			Message: "Sluice could not verify the TLS certificate of the upstream " + strconv.Quote(u.Name()) + "."}}
	}
	return outcome{transient: true, err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_unreachable", Err: err,
		Message: "Sluice could not reach the upstream " + strconv.Quote(u.Name()) + "."}}
}

// readFailure turns a failure to read the stream into an outcome. Only
// while nothing was emitted may it be retried.
func (c *call) readFailure(ctx context.Context, u *Upstream, err error) outcome {
	if c.ctx.Err() != nil {
		return outcome{err: c.ctx.Err()}
	}
	fresh := c.emitted == 0
	cause := context.Cause(ctx)
	switch {
	case cause == errNoFirstToken:
		return c.timeout(u)
	case cause == errStalled:
		return outcome{transient: fresh, err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_stalled", Err: err,
			Message: say(u) + "sent nothing for " + u.opts.IdleTimeout.String() + c.after() + c.incomplete()}}
	case errors.Is(err, io.EOF):
		return outcome{transient: fresh, err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_incomplete", Err: err,
			Message: say(u) + "closed its stream before [DONE]" + c.incomplete()}}
	case errors.Is(err, sse.ErrTooLarge):
		return outcome{err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_bad_response", Err: err,
			Message: say(u) + "sent an event larger than Sluice accepts" + c.incomplete()}}
	}
	return outcome{transient: fresh, err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_reset", Err: err,
		Message: "The connection to the upstream " + strconv.Quote(u.Name()) + " broke" + c.after() + c.incomplete()}}
}

func (c *call) timeout(u *Upstream) outcome {
	return outcome{transient: true, err: &sluice.Error{Code: sluice.EUPSTREAM, Kind: "upstream_timeout", Err: errNoFirstToken,
		Message: say(u) + "did not start answering within " + u.opts.FirstTokenTimeout.String() + "."}}
}

// after says where in the answer a failure happened.
func (c *call) after() string {
	if c.emitted == 0 {
		return " before answering"
	}
	return " in the middle of the answer"
}

// incomplete ends a failure's message: once something was sent, the reader
// must know that what it has is not the whole answer.
func (c *call) incomplete() string {
	if c.emitted == 0 {
		return "."
	}
	return "; the answer is incomplete."
}

func say(u *Upstream) string { return "The upstream " + strconv.Quote(u.Name()) + " " }

// hasValue reports whether raw holds a JSON value other than null.
func hasValue(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }
