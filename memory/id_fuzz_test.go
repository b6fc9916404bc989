package memory

import (
	"strconv"
	"testing"

	"github.com/sluice-dev/sluice"
)

// FuzzParseID checks the Last-Event-ID parser: any string either is an ID
// this store issues (and formats back to itself) or is refused as
// EINVALID; nothing panics.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"", "0", "1", "42", "01", "-1", "1e3", " 7", "18446744073709551615", "18446744073709551616", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		n, err := parseID(id)
		if err != nil {
			if sluice.ErrorCode(err) != sluice.EINVALID {
				t.Fatalf("parseID(%q): %v is not EINVALID", id, err)
			}
			return
		}
		if id == "" {
			if n != 0 {
				t.Fatalf("parseID(\"\") = %d", n)
			}
			return
		}
		if back := strconv.FormatUint(n, 10); back != id {
			t.Fatalf("parseID(%q) = %d, which formats as %q", id, n, back)
		}
	})
}
