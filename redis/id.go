package redis

import (
	"strconv"

	"github.com/sluice-dev/sluice"
)

// An event ID is "<offset>-<epoch>": the event's offset in its log, in
// decimal from 1, and the log's epoch (see newEpoch). "0-<epoch>" stands
// before the first event; a replaced-gap event carries it. The shape is
// the memory store's, so that an ID either store issued reads in the other
// as one of another incarnation.

func formatID(off uint64, epoch string) string {
	return strconv.FormatUint(off, 10) + "-" + epoch
}

// parseID reads an event ID given to l: its offset, and whether l's
// incarnation issued it (or could have: "" and "0-<epoch>" stand before
// the first event). An ID of the right shape from another incarnation, or
// a plain decimal ID as earlier versions issued, is not ours but no error;
// anything else is EINVALID.
func (l *Log) parseID(id string) (off uint64, ours bool, err error) {
	if id == "" {
		return 0, true, nil
	}
	num, epoch, dashed := cutLast(id, '-')
	off, ok := parseDecimal(num)
	if !ok || (dashed && !validEpoch(epoch)) {
		return 0, false, badID(id)
	}
	if !dashed || epoch != l.epoch {
		return 0, false, nil
	}
	return off, true, nil
}

func cutLast(s string, sep byte) (before, after string, found bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// parseDecimal reads an offset as formatID writes it: decimal digits, no
// sign, no leading zero.
func parseDecimal(s string) (uint64, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// validEpoch reports whether s has an epoch's shape: base 36 in lower
// case, no leading zero, within 64 bits.
func validEpoch(s string) bool {
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

func badID(id string) error {
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	return &sluice.Error{Code: sluice.EINVALID, Param: "last_event_id", Kind: "invalid_event_id",
		Message: "Event ID " + strconv.Quote(id) + " was not issued by this stream."}
}
