package memory

import "math"

// nameIndex returns the index of name in l.names, adding it if new. A full
// table refuses a new name, unless l is a ring: a ring makes room (see
// freeName), so that it never refuses a name for the sake of events it no
// longer keeps.
func (l *Log) nameIndex(name string) (uint8, bool) {
	for i, n := range l.names {
		if n == name {
			return uint8(i), true
		}
	}
	if len(l.names) >= maxNames {
		if !l.ring {
			return 0, false
		}
		l.freeName()
	}
	l.names = append(l.names, name)
	return uint8(len(l.names) - 1), true
}

// freeName makes room in a ring's full table of names: it keeps only the
// names of the events kept, and when every name is still in use, first
// drops the oldest events until one is not (a ring drops its oldest events
// to keep within its bounds, and the table is one of them). It costs one
// pass over the records kept, and only when the table is full.
func (l *Log) freeName() {
	var lastUse [maxNames]uint64 // by name index: the newest event of that name; 0: none
	for s := l.first; s < l.next; s++ {
		lastUse[l.rec(s).name] = s
	}
	lastUse[0] = math.MaxUint64 // "" keeps index 0
	free := false
	for _, u := range lastUse[:len(l.names)] {
		free = free || u == 0
	}
	if !free {
		oldest := 0
		for i, u := range lastUse[:len(l.names)] {
			if u < lastUse[oldest] {
				oldest = i
			}
		}
		for l.first <= lastUse[oldest] {
			l.trimOldest()
		}
		lastUse[oldest] = 0
	}
	var remap [maxNames]uint8
	kept := l.names[:0:0]
	for i, n := range l.names {
		if lastUse[i] != 0 {
			remap[i] = uint8(len(kept))
			kept = append(kept, n)
		}
	}
	for s := l.first; s < l.next; s++ {
		r := l.rec(s)
		r.name = remap[r.name]
	}
	l.names = kept
}
