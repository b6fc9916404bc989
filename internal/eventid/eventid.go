// Package eventid holds what the stores and the transports share about
// event IDs of the shape "<seq>-<epoch>" (see sluice.Log): parsing their
// parts, the error for an ID no log issued, and keeping copies of IDs that
// outlive the batch they were read in. Each store still decides what its
// own IDs mean; this package only spells the shape once.
package eventid

import (
	"strconv"
	"unsafe"

	"github.com/sluice-dev/sluice"
)

// CutLast is strings.Cut at the last sep.
func CutLast(s string, sep byte) (before, after string, found bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// ParseSeq reads a sequence number as the stores write it: decimal digits,
// no sign, no leading zero.
func ParseSeq(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// ValidEpoch reports whether s has an epoch's shape: base 36 in lower
// case, no leading zero, within 64 bits.
func ValidEpoch(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 36, 64)
	return err == nil
}

// Invalid is the error for an ID that the log asked never issued.
func Invalid(id string) error {
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return &sluice.Error{Code: sluice.EINVALID, Param: "last_event_id", Kind: "invalid_event_id",
		Message: "Event ID " + strconv.Quote(id) + " was not issued by this stream."}
}

// Keeper keeps copies of event IDs in chunks of bytes that are only ever
// appended to, never written again, so that the strings sharing them never
// change: keeping the ID of each delivered batch then costs an allocation
// every few dozen batches rather than one each. A chunk is garbage once no
// string holds an ID in it. Its owner serialises calls.
type Keeper struct{ chunk []byte }

// Keep returns a copy of id that stays valid.
func (k *Keeper) Keep(id string) string {
	if id == "" {
		return ""
	}
	if len(id) > cap(k.chunk)-len(k.chunk) {
		k.chunk = make([]byte, 0, max(512, len(id)))
	}
	start := len(k.chunk)
	k.chunk = append(k.chunk, id...)
	return unsafe.String(unsafe.SliceData(k.chunk[start:]), len(id))
}
