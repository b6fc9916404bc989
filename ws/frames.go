package ws

import (
	"encoding/binary"
	"encoding/json"
	"unicode/utf8"
	"unsafe"

	"github.com/gobwas/ws"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/wire"
)

// request is any client message; each type reads the fields it needs.
type request struct {
	Type          string          `json:"type"`
	ID            string          `json:"id"`
	Body          json.RawMessage `json:"body"`
	Stream        string          `json:"stream"`
	Topic         string          `json:"topic"`
	LastEventID   string          `json:"last_event_id"`
	From          string          `json:"from"`
	Event         string          `json:"event"`
	Data          json.RawMessage `json:"data"`
	CancelOnClose bool            `json:"cancel_on_close"`
}

// reply is every server frame but events.
type reply struct {
	Type   string `json:"type"`
	ID     string `json:"id,omitempty"`
	Stream string `json:"stream,omitempty"`
	Topic  string `json:"topic,omitempty"`
	// Conversation and Message, on "started", name where a chat that
	// continues a conversation is stored.
	Conversation string            `json:"conversation,omitempty"`
	Message      string            `json:"message,omitempty"`
	EventID      string            `json:"event_id,omitempty"`
	Status       string            `json:"status,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	Error        *wire.ErrorDetail `json:"error,omitempty"`
}

// errorReply answers the message req (which may be nil) with err.
func errorReply(req *request, err error) reply {
	obj := wire.Error(err)
	r := reply{Type: "error", Error: &obj.Error}
	if req != nil {
		r.ID, r.Stream, r.Topic = req.ID, req.Stream, req.Topic
	}
	return r
}

// appendEvent appends the frame of one log event:
// {"type":"event","stream":"<id>","id":"12","event":"","data":"..."[,"end":"done"]}.
// It is written by hand because it is the per-event path; the data is
// escaped by wire.AppendString, the encoder of every chunk.
func appendEvent(dst []byte, field, name string, ev *sluice.Event) []byte {
	dst = append(dst, `{"type":"event","`...)
	dst = append(dst, field...)
	dst = append(dst, `":`...)
	dst = wire.AppendString(dst, name)
	dst = append(dst, `,"id":`...)
	dst = wire.AppendString(dst, ev.ID)
	dst = append(dst, `,"event":`...)
	dst = wire.AppendString(dst, ev.Name)
	dst = append(dst, `,"data":`...)
	dst = appendBytesString(dst, ev.Data)
	if ev.End != sluice.EndNone {
		dst = append(dst, `,"end":"`...)
		dst = append(dst, ev.End.String()...)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// appendBytesString is wire.AppendString for a byte slice, without copying
// it into a string first. That is safe because event data is immutable
// (sluice.Event: logs never modify it, and readers must not either), and the
// string does not outlive the call.
func appendBytesString(dst, b []byte) []byte {
	return wire.AppendString(dst, unsafe.String(unsafe.SliceData(b), len(b)))
}

// eventSize is the capacity to give an event frame: the data plus the
// envelope, and some room for escapes.
func eventSize(name string, ev *sluice.Event) int {
	return len(ev.Data) + len(ev.Data)/8 + len(name) + len(ev.ID) + len(ev.Name) + 80
}

// appendFrame appends one whole server frame of op carrying payload: FIN
// set and no mask, as RFC 6455 (5.1, 5.2) has a server send. A server frame
// holds nothing of the connection it goes to, so the frame of an event is
// the same bytes for every reader of its log: it is built once and written
// to all of them.
func appendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	dst = appendFrameHeader(dst, op, len(payload))
	return append(dst, payload...)
}

// appendFrameHeader appends the header of a whole, unmasked frame of n
// bytes: the length in 7 bits, or 126 and 16 bits, or 127 and 64 bits, the
// shortest that holds it (RFC 6455 5.2).
func appendFrameHeader(dst []byte, op ws.OpCode, n int) []byte {
	dst = append(dst, 0x80|byte(op))
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xffff:
		return append(dst, 126, byte(n>>8), byte(n))
	}
	dst = append(dst, 127)
	return binary.BigEndian.AppendUint64(dst, uint64(n))
}

// frameTail reports how many bytes of b, from offset n on, finish the frame
// under way at n: 0 when n is where a frame starts or b ends. b holds
// whole server frames from offset start on (what comes before start ends
// a frame begun earlier). A write that stopped at n must be finished up to
// there before anything else goes out, a close frame included.
func frameTail(b []byte, start, n int) int {
	if n < start {
		return start - n
	}
	i := start
	for i < n && i < len(b) {
		size := int(b[i+1] & 0x7f)
		head := 2
		switch size {
		case 126:
			size, head = int(binary.BigEndian.Uint16(b[i+2:])), 4
		case 127:
			size, head = int(binary.BigEndian.Uint64(b[i+2:])), 10
		}
		i += head + size
	}
	return i - n
}

// closeFrame is a close frame with code and reason (code 0: an empty
// one, the answer to a close frame that had no code); the reason is cut to
// the 123 bytes a control frame leaves it (RFC 6455 5.5).
func closeFrame(code ws.StatusCode, reason string) []byte {
	if code == 0 {
		return appendFrame(nil, ws.OpClose, nil)
	}
	if len(reason) > 123 {
		reason = reason[:123]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return appendFrame(nil, ws.OpClose, ws.NewCloseFrameBody(code, reason))
}

// pingFrame is the heartbeat: a ping with no payload.
var pingFrame = appendFrame(nil, ws.OpPing, nil)

// frame is the text frame of a reply.
func (r reply) frame() []byte {
	b, err := json.Marshal(r)
	if err != nil { // strings only: cannot happen
		panic(err)
	}
	return appendFrame(make([]byte, 0, len(b)+4), ws.OpText, b)
}
