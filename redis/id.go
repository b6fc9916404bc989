package redis

import (
	"strconv"

	"github.com/sluice-dev/sluice/internal/eventid"
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
	num, epoch, dashed := eventid.CutLast(id, '-')
	off, ok := eventid.ParseSeq(num)
	if !ok || (dashed && !eventid.ValidEpoch(epoch)) {
		return 0, false, eventid.Invalid(id)
	}
	if !dashed || epoch != l.epoch {
		return 0, false, nil
	}
	return off, true, nil
}
