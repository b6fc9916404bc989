package ws_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestOperationsCarryTheUpgradesRequestID opens /ws with a request ID: the
// upgrade echoes it, the generation a chat.start runs logs it, and a
// refused message is logged with it and the fields HTTP refusals have.
func TestOperationsCarryTheUpgradesRequestID(t *testing.T) {
	logs := &testenv.Recorder{}
	o := fast
	o.logs = logs
	e := newEnv(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wc, resp, err := websocket.Dial(ctx, e.WSURL, &websocket.DialOptions{HTTPHeader: http.Header{"X-Request-Id": {"ws-upgrade-7"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wc.CloseNow() })
	if got := resp.Header.Get("X-Request-ID"); got != "ws-upgrade-7" {
		t.Fatalf("the upgrade echoed X-Request-ID %q", got)
	}
	c := &client{t: t, c: wc}
	c.send(map[string]any{"type": "chat.start", "id": "r1", "body": chatBody("hi")})
	stream := c.expect("started").Stream
	c.untilEnd(stream)
	c.send(map[string]any{"type": "stream.attach", "id": "r2"})
	c.expect("error")

	testenv.Eventually(t, "the generation's line", func() bool {
		for _, r := range logs.Records("generation ended") {
			if r.Attrs["id"] == stream {
				return r.Attrs["request_id"] == "ws-upgrade-7"
			}
		}
		return false
	})
	refusals := logs.Records("request refused")
	if len(refusals) == 0 {
		t.Fatal("the refused message was not logged")
	}
	r := refusals[len(refusals)-1]
	if r.Attrs["request_id"] != "ws-upgrade-7" || r.Attrs["method"] != "stream.attach" || r.Attrs["status"] != "400" {
		t.Fatalf("the refused message was logged as %v", r.Attrs)
	}
	access := logs.Records("request")
	if len(access) == 0 || access[len(access)-1].Attrs["request_id"] != "ws-upgrade-7" || access[len(access)-1].Attrs["status"] != "101" {
		t.Fatalf("the upgrade's access line: %v", access)
	}
}
