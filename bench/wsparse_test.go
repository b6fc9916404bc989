package bench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type sinkFunc func(now time.Time, data []byte)

func (f sinkFunc) event(now time.Time, data []byte) { f(now, data) }

// TestWSFramesAcrossReads feeds a generation's frames (a 16-bit length, a
// ping, events, the end) cut at every byte and in two pieces at every
// point: every event comes once, the ping is answered, and the end frame
// ends it.
func TestWSFramesAcrossReads(t *testing.T) {
	frame := func(op byte, payload string) string {
		b := []byte{0x80 | op}
		if n := len(payload); n < 126 {
			b = append(b, byte(n))
		} else {
			b = append(b, 126, byte(n>>8), byte(n))
		}
		return string(b) + payload
	}
	long := `{"type":"event","stream":"s","id":"2","event":"","data":"` + strings.Repeat("x", 300) + `"}`
	stream := frame(1, `{"type":"started","stream":"s"}`) + frame(1, `{"type":"event","stream":"s","id":"1","event":"","data":"a"}`) +
		frame(9, "hb") + frame(1, long) + frame(1, `{"type":"event","stream":"s","id":"3","event":"","data":"[DONE]","end":"done"}`) +
		"trailing bytes are not read"
	for cut := 0; cut <= len(stream); cut++ {
		var got []string
		var pongs []string
		f := &wsFrames{pong: func(p []byte) error { pongs = append(pongs, string(p)); return nil }}
		sink := sinkFunc(func(_ time.Time, data []byte) { got = append(got, string(data)) })
		end, err := f.feed([]byte(stream[:cut]), time.Now(), sink)
		if !end && err == nil {
			end, err = f.feed([]byte(stream[cut:]), time.Now(), sink)
		}
		if !end || err != nil || len(got) != 2 || got[1] != long || len(pongs) != 1 || pongs[0] != "hb" {
			t.Fatalf("cut at %d: end %v, err %v, events %d, pongs %q", cut, end, err, len(got), pongs)
		}
	}
	f := &wsFrames{}
	if _, err := f.feed([]byte(frame(8, "\x03\xe9")), time.Now(), sinkFunc(func(time.Time, []byte) {})); !errors.Is(err, errNoEnd) {
		t.Fatalf("a close frame: %v, want errNoEnd", err)
	}
}
