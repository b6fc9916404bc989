package redis

import "sync"

// Local notification: the node that writes a log (a generation's, whose
// one writer it is) has its own readers of it fed by the goroutine that
// appended, as the memory store's are, rather than by the goroutine that
// receives the log's channel handing each event to another one: on a
// loaded machine every such hand-over waits for a thread to be scheduled,
// and the time to the first token is made of them. Events appended by
// other nodes, and those this node's coalescer sends in rounds, still
// reach the readers through the channel.

// notifiers are a Store's Notify listeners, by log channel (so by name
// and incarnation), whichever handle registered them.
type notifiers struct {
	mu sync.RWMutex
	m  map[string][]*listener
}

type listener struct{ fn func() }

// Notify has fn called after every append made through this store by a
// goroutine that waits for it (Append, and a deferred append that goes at
// once), in that goroutine, until stop is called (fn may still be
// running, or about to run, when stop returns). Appends of other nodes,
// and deferred appends sent in rounds, do not call it: a reader waits for
// those in Read, as OthersAppend says. fn must not block.
func (l *Log) Notify(fn func()) (stop func()) {
	ns := &l.s.notifiers
	li := &listener{fn: fn}
	ns.mu.Lock()
	if ns.m == nil {
		ns.m = make(map[string][]*listener)
	}
	// Replaced, never changed in place: notify calls a copy.
	old := ns.m[l.channel]
	ns.m[l.channel] = append(old[:len(old):len(old)], li)
	ns.mu.Unlock()
	return func() {
		ns.mu.Lock()
		defer ns.mu.Unlock()
		var kept []*listener
		for _, x := range ns.m[l.channel] {
			if x != li {
				kept = append(kept, x)
			}
		}
		if len(kept) == 0 {
			delete(ns.m, l.channel)
		} else {
			ns.m[l.channel] = kept
		}
	}
}

// OthersAppend reports that appends Notify does not report may come (from
// other nodes, or in the coalescer's rounds): a reader must also wait for
// them in Read.
func (l *Log) OthersAppend() bool { return true }

// notify calls l's listeners after an append.
func (l *Log) notify() {
	ns := &l.s.notifiers
	ns.mu.RLock()
	ls := ns.m[l.channel]
	ns.mu.RUnlock()
	for _, li := range ls {
		li.fn()
	}
}
