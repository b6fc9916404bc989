package admit_test

import (
	"testing"

	"github.com/sluice-dev/sluice/admit"
)

// TestNormalizeData: every CR LF and lone CR becomes LF, the way an SSE
// client reads them, and data without CR is left as it is.
func TestNormalizeData(t *testing.T) {
	for in, want := range map[string]string{
		"a\rb\r\nc\nd": "a\nb\nc\nd",
		"\r\r\n\n\r":   "\n\n\n\n",
		"\r":           "\n",
		"\n\r":         "\n\n",
		"plain":        "plain",
		"":             "",
	} {
		if got := string(admit.NormalizeData([]byte(in))); got != want {
			t.Errorf("NormalizeData(%q) = %q, want %q", in, got, want)
		}
	}
	plain := []byte("no carriage return")
	if got := admit.NormalizeData(plain); &got[0] != &plain[0] {
		t.Error("data without CR was copied")
	}
}
