package admit

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/sluice-dev/sluice"
)

// FuzzDecodeChat feeds arbitrary bodies to the request decoder: it must
// never panic, every refusal must be a user-facing *sluice.Error with a
// message, and every request it accepts must be one the rest of Sluice can
// use.
func FuzzDecodeChat(f *testing.F) {
	for _, s := range []string{
		`{"model":"demo","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"demo","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"temperature":0.2}`,
		`{"model":"x","messages":[{"role":"assistant","content":null,"tool_calls":[]}],"max_tokens":5,"seed":-1}`,
		`{"model":1}`, `[]`, `{"messages":{}}`, `{"model":"m","messages":[{"role":"user","content":7}]}`, `nul`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeChat(body)
		if err != nil {
			var e *sluice.Error
			if !errors.As(err, &e) || e.Message == "" || e.Code != sluice.EINVALID {
				t.Fatalf("DecodeChat(%q): error %v is not a clear invalid-request error", body, err)
			}
			return
		}
		if req.Model == "" || len(req.Messages) == 0 {
			t.Fatalf("DecodeChat(%q) accepted a request without model or messages", body)
		}
		for _, m := range req.Messages {
			if !roles[m.Role] || !json.Valid(m.Raw) {
				t.Fatalf("DecodeChat(%q) accepted message %+v", body, m)
			}
			_ = m.Text()
		}
		for k, v := range req.Extra {
			if interpreted[k] || !json.Valid(v) {
				t.Fatalf("DecodeChat(%q): extra field %q = %s", body, k, v)
			}
		}
	})
}
