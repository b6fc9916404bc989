package ws

import (
	"encoding/json"
	"unsafe"

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
	Type    string            `json:"type"`
	ID      string            `json:"id,omitempty"`
	Stream  string            `json:"stream,omitempty"`
	Topic   string            `json:"topic,omitempty"`
	EventID string            `json:"event_id,omitempty"`
	Status  string            `json:"status,omitempty"`
	Reason  string            `json:"reason,omitempty"`
	Error   *wire.ErrorDetail `json:"error,omitempty"`
}

func (r reply) encode() []byte {
	b, err := json.Marshal(r)
	if err != nil { // strings only: cannot happen
		panic(err)
	}
	return b
}

// errorReply answers the message req (which may be nil) with err.
func errorReply(req *request, err error) []byte {
	obj := wire.Error(err)
	r := reply{Type: "error", Error: &obj.Error}
	if req != nil {
		r.ID, r.Stream, r.Topic = req.ID, req.Stream, req.Topic
	}
	return r.encode()
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
