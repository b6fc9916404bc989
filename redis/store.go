// Package redis keeps logs in Redis, so that several Sluice nodes share
// them: any node appends to any log and serves any reader, from any event
// ID. It implements sluice.Store on Redis Streams and sharded pub/sub, on a
// single server or a Redis Cluster.
//
// Each log is a Stream of its events, whose entry IDs are the events'
// offsets ("<offset>-0"), and a small hash of its state: epoch (the
// incarnation, in every event ID), top offset, end, ring, MaxLen and owner.
// Both keys, and the log's channel, share a hash tag, so that in a cluster
// they live on one shard and one Lua script can touch them all: an append
// is one script that checks the state, takes the next offset, XADDs (a ring
// trims to MaxLen), sets the expiry and SPUBLISHes the event. Readers that
// are behind read with XRANGE; readers that are waiting get new events
// from the log's channel (feed.go), which a node subscribes to once however
// many of its readers wait, and shares among them in process.
package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"github.com/sluice-dev/sluice"
)

// Default limits, used where Options leaves a field zero.
const (
	DefaultMaxLen        = 65536
	DefaultRetention     = 10 * time.Minute
	DefaultOpenTTL       = time.Hour
	DefaultMaxEventBytes = 1 << 20
	DefaultPrefix        = "sluice"
	DefaultLinger        = 10 * time.Second
	DefaultLease         = 3 * time.Second
)

// Options configure a Store.
type Options struct {
	// URL locates Redis: redis://[user:password@]host:port[/db], rediss://
	// for TLS. A Redis Cluster is found from any of its nodes.
	URL string
	// Prefix starts every key, so that several deployments may share a
	// Redis; it must not hold '{' or '}', which make the hash tags.
	Prefix string
	// Retention is how long an ended log is kept, and an idle ring.
	Retention time.Duration
	// OpenTTL is how long a log that is not a ring and has not ended is
	// kept after its last append: a backstop for a writer that died
	// without ending it, until leases say so sooner.
	OpenTTL time.Duration
	// MaxLen is the default bound on a log's length.
	MaxLen int
	// MaxEventBytes bounds one event (its name and data): a larger one is
	// refused with ETOOLARGE rather than published whole to every node.
	MaxEventBytes int
	// Linger is how long a node stays subscribed to a log after its last
	// waiting reader left, so that a reader that reads again at once (as
	// every follower does after each batch) finds the subscription there.
	Linger time.Duration
	// Lease is how long a node's lease on a log it writes lasts without
	// renewal (see lease.go): it renews every Lease/3, and a log whose
	// writer is lost ends within Lease + Lease/3 of its last renewal
	// (LostWithin). Every node that shares the logs should have the same.
	Lease time.Duration
	// Coalesce is the least time between two rounds of deferred appends
	// (Log.Defer, coalesce.go): appends that come within it of the last
	// round wait for the next and go together, one script run a log; one
	// that comes after a quiet spell goes at once. Zero means
	// DefaultCoalesce; a negative value sends each deferred append alone,
	// as Append does.
	Coalesce time.Duration
	// Observer, when set, is told of every round trip to Redis (for
	// metrics).
	Observer Observer
}

// Store is a sluice.Store in Redis. It is safe for concurrent use; Close
// releases its connections and stops its goroutines.
type Store struct {
	client    rueidis.Client
	opts      Options
	node      string    // this node's ID, random, in the leases it holds
	feeds     feeds     // this node's subscriptions (feed.go)
	leases    leases    // the leases of the logs it writes (lease.go)
	coalescer coalescer // rounds of deferred appends (coalesce.go)

	stop    chan struct{}
	cancel  context.CancelFunc // of what the store's goroutines wait on
	stopped sync.WaitGroup
	closing sync.Once
}

var _ sluice.Store = (*Store)(nil)

// New connects to Redis and returns a Store. It fails when Redis cannot be
// reached, so that a node does not start without its logs.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if strings.ContainsAny(opts.Prefix, "{}") {
		return nil, fmt.Errorf("redis: prefix %q must not hold '{' or '}'", opts.Prefix)
	}
	opts.Retention = positive(opts.Retention, DefaultRetention)
	opts.OpenTTL = positive(opts.OpenTTL, DefaultOpenTTL)
	opts.MaxLen = positive(opts.MaxLen, DefaultMaxLen)
	opts.MaxEventBytes = positive(opts.MaxEventBytes, DefaultMaxEventBytes)
	opts.Linger = positive(opts.Linger, DefaultLinger)
	opts.Lease = positive(opts.Lease, DefaultLease)
	if opts.Coalesce == 0 {
		opts.Coalesce = DefaultCoalesce
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}

	// rueidis rather than go-redis: it pipelines every concurrent command
	// onto one connection by itself (what a node appending for thousands
	// of generations needs, and what centrifuge measured a 2-3x gain from
	// when it moved), it multiplexes pub/sub on that connection too (one
	// subscription per log costs no connection), and it routes by slot
	// in a Redis Cluster, sharded pub/sub included.
	co, err := rueidis.ParseURL(opts.URL)
	if err != nil {
		// Not wrapped: the parser's errors quote the URL, password and all.
		return nil, errors.New("redis: the URL is not valid: want redis://[user:password@]host:port[/db], rediss:// for TLS")
	}
	// No client-side caching: logs change with every append. No retries:
	// appends are not idempotent, and a subscription that breaks must end
	// (see feed.go), so that its readers hear of it rather than wait on.
	co.DisableCache = true
	co.DisableRetry = true
	client, err := rueidis.NewClient(co)
	if err != nil {
		return nil, fmt.Errorf("redis: connecting to %s: %w", co.InitAddress, err)
	}
	if err := client.Do(ctx, client.B().Ping().Build()).Error(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis: ping %s: %w", co.InitAddress, err)
	}
	s := &Store{client: client, opts: opts, node: newNodeID(), stop: make(chan struct{})}
	s.feeds.init(s)
	s.leases.init(s)
	s.coalescer = coalescer{s: s, wake: make(chan struct{}, 1)}
	lctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.stopped.Add(5)
	go s.janitor()
	go s.coalescer.run()
	go s.leases.run()
	go s.leases.watch()
	go s.leases.listen(lctx)
	return s, nil
}

func positive[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Retention reports how long an ended log is kept, and an idle ring.
func (s *Store) Retention() time.Duration { return s.opts.Retention }

// Close ends this node's subscriptions, waits for their goroutines and
// closes the connections. Logs stay in Redis; handles stop working.
func (s *Store) Close() error {
	s.closing.Do(func() {
		close(s.stop)
		s.cancel()
		s.feeds.closeAll()
		s.stopped.Wait()
		s.client.Close()
	})
	return nil
}

// Create makes a new log; an existing name is ECONFLICT.
func (s *Store) Create(ctx context.Context, name string, opts sluice.LogOptions) (sluice.Log, error) {
	return s.open(ctx, name, modeCreate, opts)
}

// Open returns the named log, creating it when create is set. Opening a
// ring counts as using it.
func (s *Store) Open(ctx context.Context, name string, create bool, opts sluice.LogOptions) (sluice.Log, error) {
	mode := modeOpen
	if create {
		mode = modeEnsure
	}
	return s.open(ctx, name, mode, opts)
}

// keysOf returns the keys of the named log: its state hash and its stream.
// They share a hash tag; a name that would break the tag (it holds '}', or
// is empty) goes into it in hex, under a prefix no plain name has.
func (s *Store) keysOf(name string) (base string, keys []string) {
	if name != "" && !strings.Contains(name, "}") {
		base = s.opts.Prefix + ":{" + name + "}"
	} else {
		base = s.opts.Prefix + ":h{=" + hex.EncodeToString([]byte(name)) + "}"
	}
	return base, []string{base + ":s", base + ":x"}
}

// janitor keeps the rings that this node's readers wait on from expiring,
// and ends the subscriptions that no reader has used for the linger time.
func (s *Store) janitor() {
	defer s.stopped.Done()
	period := min(s.opts.Linger/2, s.opts.Retention/10)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.feeds.sweep()
		}
	}
}

// unavailable wraps a failure of Redis. Redis refusing for a while (out
// of memory, loading, a cluster resharding) or not answering is
// EUNAVAILABLE; a command it refuses as wrong is a bug of ours.
func unavailable(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// A connection that Redis closed (it stopped, or the path to it
		// broke) fails the commands under way with io.EOF, and io.EOF is
		// what Read reports at a log's real end: kept in the chain, it
		// would make a reader take a lost server for a finished answer,
		// with no ending event. Its text is kept, not its identity.
		err = errors.New("redis: the connection was closed: " + err.Error())
	}
	if re := (*rueidis.RedisError)(nil); errors.As(err, &re) && !re.IsNil() {
		switch kind, _, _ := strings.Cut(re.Error(), " "); kind {
		case "OOM", "BUSY", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "MOVED", "ASK":
		default:
			return &sluice.Error{Code: sluice.EINTERNAL, Message: "The log store refused a command.", Err: err}
		}
	}
	return &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "store_unavailable", Message: "The log store cannot be reached; try again shortly.",
		RetryAfter: time.Second, Err: err}
}
