// Package convo keeps conversations for the transports: it stands between
// them (api, and every transport that starts chats, through admit) and a
// sluice.ConversationStore (sqlite, postgres). It checks that a caller
// owns what it asks for (an unknown conversation is ENOTFOUND, another
// key's EFORBIDDEN), validates requests and their bounds, exports
// conversations as JSON and Markdown, and tells each owner's change feed
// (a Sluice log, so that it crosses nodes on Redis) what changed.
//
// It also records chats: a chat that names a conversation is answered from
// the stored branch, and its answer is written as it streams by a
// recorder that follows the generation's log as any reader does, in
// batches at most once a second and once at the end, so that nothing on
// the per-token path touches the database. A sweeper marks answers whose
// writer died interrupted. Both goroutines belong to the Service, which
// stops and waits for them in Shutdown.
package convo

import (
	"context"
	"log/slog"
	"regexp"
	"sync"
	"time"

	"github.com/sluice-dev/sluice"
)

// Options configure a Service. Zero durations take the defaults below.
type Options struct {
	Store sluice.ConversationStore // required
	// Logs is where the change feeds live (the log store the node streams
	// from), nil: no feed.
	Logs   sluice.Store
	Logger *slog.Logger

	// FlushEvery is the least time between two writes of an answer in
	// progress.
	FlushEvery time.Duration
	// Stale is how long an answer's heartbeat may be quiet before the
	// sweeper takes its writer for dead and marks it interrupted; a
	// recorder refreshes it at least four times within it.
	Stale time.Duration
	// SweepEvery is how often the sweeper runs (zero: a quarter of Stale);
	// negative: never.
	SweepEvery time.Duration

	// WriteRetry is the first pause before a write that failed (a chat's
	// messages, an answer's end) is tried again; each next pause doubles,
	// endAttempts tries in all.
	WriteRetry time.Duration

	// Observer, when set, is told of every write to Store, of the
	// recorders' batches and ends, and of the sweeps.
	Observer Observer
}

// Defaults for Options.
const (
	DefaultFlushEvery = time.Second
	DefaultStale      = time.Minute
	DefaultWriteRetry = 250 * time.Millisecond
)

// Bounds of requests, besides the conversation bounds of the domain
// (sluice.MaxConversationItems, ...).
const (
	MaxItemsPerRequest = 1000 // items one create or add may carry
	MaxPageLimit       = 100
	DefaultPageLimit   = 20
	MaxMetadataKey     = 64  // bytes, as OpenAI allows
	MaxMetadataValue   = 512 // bytes, as OpenAI allows
	MaxSearchBytes     = 256
)

// Service keeps conversations for callers. It is safe for concurrent use.
type Service struct {
	store sluice.ConversationStore
	logs  sluice.Store
	log   *slog.Logger
	opts  Options
	obs   Observer

	ctx    context.Context // parent of the recorders; cancelled when Shutdown gives up waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup // the chats' writes, recorders and the sweeper
	stop   chan struct{}  // closed by Shutdown: the sweeper ends

	mu       sync.Mutex
	closing  bool // no recorder starts any more
	stopOnce sync.Once

	pendMu  sync.Mutex
	pending map[string]chan struct{} // conversation ID: the last write of a chat's messages begun, closed when done
	recs    map[string]*recorder     // stream ID: the recorder storing its answer on this node, until it is stored
}

// New returns a Service over opts.Store and starts its sweeper.
func New(opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultFlushEvery
	}
	if opts.Stale <= 0 {
		opts.Stale = DefaultStale
	}
	if opts.WriteRetry <= 0 {
		opts.WriteRetry = DefaultWriteRetry
	}
	if opts.SweepEvery == 0 {
		opts.SweepEvery = opts.Stale / 4
	}
	store, obs := opts.Store, opts.Observer
	if obs == nil {
		obs = nopObserver{}
	} else {
		store = observedStore{ConversationStore: store, obs: obs}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{store: store, logs: opts.Logs, log: opts.Logger, opts: opts, obs: obs, ctx: ctx, cancel: cancel, stop: make(chan struct{}),
		pending: map[string]chan struct{}{}, recs: map[string]*recorder{}}
	if opts.SweepEvery > 0 {
		s.wg.Add(1)
		go s.sweep()
	}
	return s
}

// Shutdown stops the sweeper and waits for every chat's messages to be
// stored and every recorder to write its last batch: call it after the generations have ended (gen.Runner's
// Shutdown), and close the store after it. When ctx is done first, the
// recorders still running store what they have as interrupted and end.
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stop) })
	idle := make(chan struct{})
	go func() { s.wg.Wait(); close(idle) }()
	select {
	case <-idle:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	<-idle
	return ctx.Err()
}

var (
	convID = regexp.MustCompile(`^conv_[0-9a-f]{32}$`)
	msgID  = regexp.MustCompile(`^msg_[0-9a-f]{32}$`)
)

func invalid(param, kind, msg string) error {
	return &sluice.Error{Code: sluice.EINVALID, Param: param, Kind: kind, Message: msg}
}

// checkConvID refuses what cannot be a conversation ID, so that a typo is
// told apart from a conversation that does not exist.
func checkConvID(id, param string) error {
	if !convID.MatchString(id) {
		return invalid(param, "invalid_conversation_id", "Invalid conversation ID '"+clip(id)+"': expected 'conv_' and 32 hex digits.")
	}
	return nil
}

func checkItemID(id, param string) error {
	if !msgID.MatchString(id) {
		return invalid(param, "invalid_item_id", "Invalid item ID '"+clip(id)+"': expected 'msg_' and 32 hex digits.")
	}
	return nil
}

// clip keeps what a client sent short enough to quote in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

var errForeign = &sluice.Error{Code: sluice.EFORBIDDEN, Kind: "conversation_forbidden",
	Message: "This conversation belongs to another API key."}

// own returns conversation id if owner may use it. A chat's messages that
// this node is storing are waited for first (see awaitStored): a client
// reads its own chat as soon as it was answered the chat's IDs.
func (s *Service) own(ctx context.Context, owner, id string) (sluice.Conversation, error) {
	if err := checkConvID(id, "conversation_id"); err != nil {
		return sluice.Conversation{}, err
	}
	s.awaitStored(ctx, id)
	c, err := s.store.Conversation(ctx, id)
	if err != nil {
		return c, err
	}
	if c.Owner != owner {
		return sluice.Conversation{}, errForeign
	}
	return c, nil
}
