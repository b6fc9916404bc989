package memory

import (
	"testing"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/eventid"
)

// FuzzParseID checks the Last-Event-ID parser: any string is an ID of this
// log (and formats back to itself), an ID of another incarnation (it has
// the shape: "<seq>-<epoch>" or plain decimal), or is refused as EINVALID;
// nothing panics.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"", "0", "1", "42", "01", "-1", "1e3", " 7", "18446744073709551615", "18446744073709551616", "٣",
		"1-mh3k2x1a", "0-mh3k2x1a", "1-", "-", "1-0", "1-MH3", "1-2-3", "1-zzzzzzzzzzzzzz", "1-3w5e11264sgsf"} {
		f.Add(s)
	}
	l := newLog("topic/fuzz", sluice.LogOptions{MaxLen: 10})
	f.Add(string(appendID(nil, 3, l.epoch)))
	f.Fuzz(func(t *testing.T, id string) {
		seq, ours, err := l.parseID(id)
		switch {
		case err != nil:
			if sluice.ErrorCode(err) != sluice.EINVALID {
				t.Fatalf("parseID(%q): %v is not EINVALID", id, err)
			}
		case id == "":
			if !ours || seq != 0 {
				t.Fatalf("parseID(\"\") = %d, %v", seq, ours)
			}
		case ours:
			if back := string(appendID(nil, seq, l.epoch)); back != id {
				t.Fatalf("parseID(%q) = %d, which formats as %q", id, seq, back)
			}
		default: // another incarnation: of the shape, with another epoch
			num, epoch, dashed := eventid.CutLast(id, '-')
			if _, ok := eventid.ParseSeq(num); !ok || (dashed && (epoch == l.epoch || !eventid.ValidEpoch(epoch))) {
				t.Fatalf("parseID(%q) takes it for another incarnation's", id)
			}
		}
	})
}
