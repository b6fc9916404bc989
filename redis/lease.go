package redis

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluice-dev/sluice"
)

// Leases are how the nodes that share logs learn that one of them is lost.
// The node that creates a log with sluice.LogOptions.Lost is its one
// writer and holds a lease on it, in the log's state, until the log ends:
// every Lease/3 it renews all of its leases in one pipelined round. The
// nodes whose readers wait on a leased log look at its lease as often, in
// one pipelined round for all such logs, with appendScript: the first run
// that finds the lease lapsed ends the log with its lost ending, once, for
// everyone (the script is atomic, and an ended log takes no more appends,
// the lost writer's included).
//
// The bound that follows: a lost writer's last renewal was at most Lease/3
// before it was lost, so its lease lapses at most Lease after, and a
// reader's node looks at most Lease/3 later: the lost ending is published
// within Lease + Lease/3 (4 s with the default lease of 3 s), plus a
// round trip. A writer paused for longer than Lease - Lease/3 (a frozen
// process, a network cut) loses its logs, by the same rule.
//
// Stops ride on the leases too: a node asked to stop a log that another
// node writes marks it in the log's state and publishes the request on
// that node's channel, which each node subscribes to once; the mark is
// seen at the next renewal if the message is lost.
type leases struct {
	s    *Store
	mu   sync.Mutex
	held map[string]*Log // the logs this node writes, by name

	onStop atomic.Pointer[func(name string)]
}

func (ls *leases) init(s *Store) {
	ls.s = s
	ls.held = make(map[string]*Log)
}

// hold makes this node renew l's lease until drop. The handle that
// created the log stays held (see writer) when another of the same
// incarnation is opened here.
func (ls *leases) hold(l *Log) {
	ls.mu.Lock()
	if h := ls.held[l.name]; h == nil || h.epoch != l.epoch || !h.created {
		ls.held[l.name] = l
	}
	ls.mu.Unlock()
}

// drop ends this node's renewals of l's lease. Readers on this node that
// wait on the log look at Redis again: what writer said of it no longer
// holds.
func (ls *leases) drop(l *Log) {
	ls.mu.Lock()
	h := ls.held[l.name]
	if h != nil && h.epoch == l.epoch {
		delete(ls.held, l.name)
	}
	ls.mu.Unlock()
	if h != nil && h.epoch == l.epoch {
		ls.s.feeds.wake(l)
	}
}

// writer returns the handle that created the log of that name and epoch,
// if this node holds its lease, else nil. While it does, every event of
// the log is appended through that handle, so that the handle's top is
// the log's, as far as Redis has answered: Last, and a reader that has
// read up to it, need not ask Redis. (Should the lease lapse meanwhile,
// the log's lost ending comes by its channel, or through the look that
// follows drop.)
func (ls *leases) writer(name, epoch string) *Log {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if h := ls.held[name]; h != nil && h.epoch == epoch && h.created {
		return h
	}
	return nil
}

// holds reports whether this node writes the log of that name and epoch.
func (ls *leases) holds(name, epoch string) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	h := ls.held[name]
	return h != nil && h.epoch == epoch
}

// run renews this node's leases every Lease/3 until the store closes.
// Renewals have a goroutine of their own, apart from the looks at other
// nodes' leases (watch), and a round may take until its leases would lapse
// (Lease - Lease/3 after the last): on a loaded node or Redis, neither a
// slow look nor a slow but timely renewal cut short makes live logs lost.
func (ls *leases) run() { ls.every(ls.s.opts.Lease-ls.s.opts.Lease/3, ls.renew) }

// watch looks at the leases of the logs this node's readers wait on every
// Lease/3 until the store closes, each look within that period.
func (ls *leases) watch() { ls.every(ls.s.opts.Lease/3, ls.check) }

// every calls round every Lease/3, each within budget, until the store
// closes.
func (ls *leases) every(budget time.Duration, round func(context.Context)) {
	defer ls.s.stopped.Done()
	t := time.NewTicker(ls.s.opts.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ls.s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		round(ctx)
		cancel()
	}
}

// LostWithin is the bound within which a log whose writer is lost is
// ended as lost (see leases): Lease + Lease/3, plus a round trip.
func (s *Store) LostWithin() time.Duration { return s.opts.Lease + s.opts.Lease/3 }

// renew renews every lease this node holds, in one pipelined round.
func (ls *leases) renew(ctx context.Context) {
	ls.mu.Lock()
	logs := make([]*Log, 0, len(ls.held))
	for _, l := range ls.held {
		logs = append(logs, l)
	}
	ls.mu.Unlock()
	if len(logs) == 0 {
		return
	}
	lease := millis(ls.s.opts.Lease)
	execs := make([]rueidis.LuaExec, len(logs))
	for i, l := range logs {
		execs[i] = rueidis.LuaExec{Keys: l.keys[:1], Args: []string{l.epoch, ls.s.node, lease}}
	}
	start := time.Now()
	results := renewScript.ExecMulti(ctx, ls.s.client, execs...)
	ls.s.observe("lease", start, firstError(results))
	for i, res := range results {
		n, err := res.AsInt64()
		switch {
		case err != nil:
			// Redis is away: the lease lapses unless the next round is
			// in time, and then the log is lost, as it should be.
		case n == renewedStop:
			ls.stop(logs[i].name)
		case n == dropped:
			ls.drop(logs[i])
		case n == lapsed:
			// Too late: the first look ends it as lost, this node's own
			// among them (the log's appends are refused from now on).
			ls.drop(logs[i])
			appendScript.Exec(ctx, ls.s.client, logs[i].keys, ls.lookArgs(logs[i]))
		}
	}
}

// check looks at the leases of the logs that this node's readers wait on,
// in one pipelined round: a lapsed one is ended as lost, and readers of a
// log that is gone (expired without ending, or replaced) are woken to find
// it so, rather than wait for an event that will never come.
func (ls *leases) check(ctx context.Context) {
	fs := &ls.s.feeds
	var feeds []*feed
	fs.mu.Lock()
	for _, f := range fs.m {
		if f.log.ring || f.stopping || ls.holds(f.log.name, f.log.epoch) {
			continue
		}
		f.mu.Lock()
		waiting := f.waiting > 0
		f.mu.Unlock()
		if waiting {
			feeds = append(feeds, f)
		}
	}
	fs.mu.Unlock()
	if len(feeds) == 0 {
		return
	}
	execs := make([]rueidis.LuaExec, len(feeds))
	for i, f := range feeds {
		execs[i] = rueidis.LuaExec{Keys: f.log.keys, Args: ls.lookArgs(f.log)}
	}
	start := time.Now()
	results := appendScript.ExecMulti(ctx, ls.s.client, execs...)
	ls.s.observe("lease", start, firstError(results))
	for i, res := range results {
		if st, err := res.AsIntSlice(); err == nil && len(st) == 3 && st[0] == appendGone {
			fs.end(feeds[i])
		}
	}
}

// firstError returns the first error of a pipeline's results.
func firstError(results []rueidis.RedisResult) error {
	for _, res := range results {
		if err := res.Error(); err != nil && !rueidis.IsRedisNil(err) {
			return err
		}
	}
	return nil
}

// lookArgs are appendScript's arguments for a run with no events.
func (ls *leases) lookArgs(l *Log) []string {
	return []string{l.epoch, l.channel, millis(ls.s.opts.Retention), millis(ls.s.opts.OpenTTL), ls.s.node}
}

// stop hands a request to stop the named log to the function that
// OnStop gave, if this node writes it.
func (ls *leases) stop(name string) {
	ls.mu.Lock()
	_, ok := ls.held[name]
	ls.mu.Unlock()
	if f := ls.onStop.Load(); ok && f != nil {
		(*f)(name)
	}
}

// nodeChannel is the channel on which node is asked to stop its logs.
func (s *Store) nodeChannel(node string) string {
	return s.opts.Prefix + ":n{" + node + "}"
}

// listen takes the requests to stop this node's logs from its channel,
// subscribing again after the connection breaks, until the store closes.
func (ls *leases) listen(ctx context.Context) {
	defer ls.s.stopped.Done()
	client := ls.s.client
	channel := ls.s.nodeChannel(ls.s.node)
	for {
		_ = client.Receive(ctx, client.B().Ssubscribe().Channel(channel).Build(), func(m rueidis.PubSubMessage) {
			// "<epoch>:<name>"
			if epoch, name, ok := strings.Cut(m.Message, ":"); ok && ls.holds(name, epoch) {
				ls.stop(name)
			}
		})
		// Missed requests are seen at the next renewal meanwhile.
		select {
		case <-ctx.Done():
			return
		case <-time.After(ls.s.opts.Lease / 3):
		}
	}
}

// RequestStop asks the node that writes l to stop it, and reports whether
// a node was asked: false when l has ended, is gone or has no writer. It
// returns once the request is on its way; the writer's ending event says
// when it has stopped. (gen.Runner uses it to cancel a generation that
// another node runs.)
func (s *Store) RequestStop(ctx context.Context, l sluice.Log) (bool, error) {
	rl, ok := l.(*Log)
	if !ok || rl.s != s {
		return false, nil
	}
	start := time.Now()
	res := stopScript.Exec(ctx, s.client, rl.keys[:1], []string{rl.epoch})
	s.observe("stop", start, res.Error())
	if rueidis.IsRedisNil(res.Error()) {
		return false, nil
	}
	node, err := res.ToString()
	if err != nil {
		return false, unavailable(errors.Join(errors.New("redis: stop "+rl.name), err))
	}
	if node == s.node {
		s.leases.stop(rl.name)
		return true, nil
	}
	// Published for a prompt stop; if it is lost, the mark just made
	// stops the writer at its next renewal.
	_ = s.client.Do(ctx, s.client.B().Spublish().Channel(s.nodeChannel(node)).Message(rl.epoch+":"+rl.name).Build()).Error()
	return true, nil
}

// OnStop makes stop be called with the name of each log that this node
// writes and another node asks to stop (see RequestStop). stop must
// return at once: it is called from the goroutines that receive from
// Redis and renew the leases.
func (s *Store) OnStop(stop func(name string)) { s.leases.onStop.Store(&stop) }
