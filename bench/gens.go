package bench

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// generate runs generations on connections of its own, after delay, until
// the worker stops (or once, with Job.Once), timing each.
func (w *worker) generate(d *net.Dialer, delay time.Duration) {
	defer w.wg.Done()
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-w.ctx.Done():
		t.Stop()
		return
	}
	local := newReport()
	defer w.merge(&local)
	// Bounded: at most this many generations per connection slot, and the
	// worker's deadline.
	for range 10000 {
		err := w.generation(d, &local)
		if err != nil && w.ctx.Err() == nil {
			w.fail(err)
			return
		}
		if w.job.Once || w.ctx.Err() != nil {
			return
		}
	}
}

// timing follows one generation's events.
type timing struct {
	w       *worker
	h       *Report
	dialed  time.Time // before the dial
	sent    time.Time // once the request was written
	n       int       // events so far
	content bool      // the first content token has come
	prev    time.Time // the last content event
}

func (t *timing) record() bool { return t.w.job.Once || t.w.recording.Load() }

// event takes one event that arrived at now; data is its payload (over
// WebSocket, the frame, where the chunk's JSON is a string).
func (t *timing) event(now time.Time, data []byte) {
	t.n++
	finish := bytes.Contains(data, []byte(`finish_reason":"`)) || bytes.Contains(data, []byte(`finish_reason\":\"`))
	// The first content token; a model behind Sluice may send its role with
	// it, in one event. Told apart even while not recording, so that a
	// generation under way when the worker is marked has its next tokens
	// taken as what they are.
	first := !t.content && hasContent(data)
	t.content = t.content || first
	if t.record() {
		if t.n == 1 { // the model's first emit, its role chunk, at its start
			t.h.Overhead.Add(now.Sub(t.sent))
		}
		switch {
		case first:
			t.h.TTFT.Add(now.Sub(t.sent))
			t.h.Cold.Add(now.Sub(t.dialed))
			if recv, emit, ok := modelStamps(data); ok {
				// The model's own time to first token, as it measured it,
				// taken out: what is left is what carried the request to
				// the model and the token back.
				t.h.Added.Add(now.Sub(t.sent) - time.Duration(emit-recv))
			}
		case t.content && !finish:
			t.h.ITL.Add(now.Sub(t.prev))
		}
	}
	if !finish {
		t.prev = now
	}
}

// hasContent reports whether a chat chunk (or a WebSocket frame holding
// one as a string) carries content that is not empty.
func hasContent(data []byte) bool {
	for _, key := range [][]byte{[]byte(`"content":"`), []byte(`\"content\":\"`)} {
		if i := bytes.Index(data, key); i >= 0 {
			rest := data[i+len(key):]
			return len(rest) > 0 && rest[0] != '"' && !bytes.HasPrefix(rest, []byte(`\"`))
		}
	}
	return false
}

// modelStamp starts the baseline's first content token: " @<received>/<emitted>",
// the wall-clock nanoseconds at which the model had the request and at which
// it sent that token.
const modelStamp = " @"

// modelStamps reads the stamps of the baseline model's first token.
func modelStamps(data []byte) (recv, emit int64, ok bool) {
	i := bytes.Index(data, []byte(modelStamp))
	if i < 0 {
		return 0, 0, false
	}
	rest := data[i+len(modelStamp):]
	recv, rest, ok = digits(rest)
	if !ok || len(rest) == 0 || rest[0] != '/' {
		return 0, 0, false
	}
	emit, _, ok = digits(rest[1:])
	return recv, emit, ok && emit >= recv
}

// digits parses the decimal number at the start of b.
func digits(b []byte) (v int64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && i < 19 && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
	}
	return v, b[i:], i > 0
}

var errNoEnd = errors.New("the stream ended without [DONE]")

// generation runs one chat completion, on a new connection, to its end or
// until the worker stops. Over SSE, readSSE reads the stream and closes
// the connection.
func (w *worker) generation(d *net.Dialer, h *Report) error {
	chat := map[string]any{
		"model": cmp.Or(w.job.Model, "demo"), "stream": true,
		"messages": []map[string]string{{"role": "user", "content": w.job.Prompt}},
	}
	if w.job.Conversation {
		id, err := w.newConversation()
		if err != nil {
			return err
		}
		chat["conversation"] = id
	}
	body, _ := json.Marshal(chat)
	t := &timing{w: w, h: h, dialed: time.Now()}
	if w.job.Transport == "ws" {
		return w.generationWS(d, body, t)
	}
	c, err := d.Dial("tcp", w.job.Host)
	if err != nil {
		return err
	}
	if !w.track(c) {
		return nil
	}
	if t.record() {
		h.Connect.Add(time.Since(t.dialed))
	}
	req := fmt.Appendf(nil, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"+
		"Sluice-Cancel-On-Disconnect: true\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		w.job.Host, len(body), body)
	t.sent = time.Now()
	s, err := finishSSE(c, req)
	if err != nil {
		w.untrack(c)
		return err
	}
	return w.readSSE(s, t)
}

func (w *worker) generationWS(d *net.Dialer, body []byte, t *timing) error {
	s, err := openWS(d, w.job.Host)
	if err != nil {
		return err
	}
	if !w.track(s.conn) {
		return nil
	}
	if t.record() {
		t.h.Connect.Add(time.Since(t.dialed))
	}
	msg := fmt.Appendf(nil, `{"type":"chat.start","cancel_on_close":true,"body":%s}`, body)
	t.sent = time.Now()
	if err := writeWS(s.conn, 0x1, msg); err != nil {
		w.untrack(s.conn)
		return err
	}
	return w.readWS(s, t)
}

// newConversation makes the conversation of one generation, over a
// connection the worker keeps for it (net/http's client: this request is
// not timed, so it need not be read in the epoll loop).
func (w *worker) newConversation() (string, error) {
	req, _ := http.NewRequestWithContext(w.ctx, http.MethodPost, "http://"+w.job.Host+"/v1/conversations",
		strings.NewReader(`{"title":"sluice bench"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.api.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var c struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&c); err != nil || resp.StatusCode != http.StatusOK || c.ID == "" {
		return "", fmt.Errorf("POST /v1/conversations: %s %v", resp.Status, err)
	}
	return c.ID, nil
}
