package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// wsFrames reads the server frames of one generation over WebSocket, fed in
// pieces as a read returns them, as the Linux event loop reads SSE bodies
// (gens_linux.go): so that the bench spends as little on a WebSocket
// generation as on an SSE one, and the two servers are measured alike.
type wsFrames struct {
	pending []byte                     // the start of a frame whose end has not arrived
	pong    func(payload []byte) error // answers a ping
}

// feed takes p, the bytes a read returned at now, and hands the event
// frames they complete to s. It reports whether the generation ended (the
// frame with "end"), or an error for a frame it does not expect.
func (f *wsFrames) feed(p []byte, now time.Time, s eventSink) (bool, error) {
	b := p
	if len(f.pending) > 0 {
		f.pending = append(f.pending, p...)
		b = f.pending
	}
	for {
		op, payload, n := serverFrame(b)
		if n == 0 {
			break
		}
		b = b[n:]
		switch op {
		case 0x1:
			switch {
			case bytes.HasPrefix(payload, []byte(`{"type":"event"`)):
				if bytes.Contains(payload, []byte(`,"end":"`)) {
					return true, nil
				}
				s.event(now, payload)
			case bytes.HasPrefix(payload, []byte(`{"type":"started"`)):
			default:
				return false, fmt.Errorf("unexpected frame %.200s", payload)
			}
		case 0x8:
			return false, fmt.Errorf("%w: %v", errNoEnd, errWSClosed)
		case 0x9:
			if err := f.pong(payload); err != nil {
				return false, err
			}
		}
	}
	f.pending = append(f.pending[:0], b...) // b may be the end of pending: append moves it down
	return false, nil
}

// closed is the error for the connection's end before the generation's.
func (f *wsFrames) closed(err error) error {
	if err == nil {
		err = io.EOF
	}
	return fmt.Errorf("%w: %v", errNoEnd, err)
}

// serverFrame parses the whole, unmasked frame at the start of b, as a
// server sends them; n is 0 when b does not hold one whole.
func serverFrame(b []byte) (op byte, payload []byte, n int) {
	if len(b) < 2 {
		return 0, nil, 0
	}
	size, head := int(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0
		}
		size, head = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0
		}
		size, head = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	if len(b) < head+size {
		return 0, nil, 0
	}
	return b[0] & 0x0f, b[head : head+size], head + size
}

// pongFrame is a client's pong: masked, with a zero key, which leaves the
// payload as it is (see writeWS).
func pongFrame(payload []byte) []byte {
	return append([]byte{0x8a, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...)
}
