// Package admit decides whether a request may be carried out, for every
// transport alike: who the caller is (API keys), how much it may ask (rate
// and request limits, stream places), which model answers it, which
// streams it may read (ownership) and which topics and events it may use.
// In the flow request → model → log → reader → transport it is the first
// step: the SSE API (api) and WebSocket (ws) turn what arrives on their
// wire into calls of a Gate, and carry out only what it admits. A check
// added here holds on every transport at once, and no transport reaches
// into another for it. It sits with the transports at the edge of the
// flow, so it may import what they import (the root package, and gen for
// the names of generation logs); only transports, cmd and tests import it.
//
// Every API operation enters through one call that charges the caller's
// rate budget: Enter (chat, attach, cancel, publish, and any other API
// request) or Subscribe (reading a topic, which public topics allow without
// a key). What the operation needs from the store (a generation's log, a
// topic) is reached only through what that call returns, so a transport
// cannot reach it without having been charged.
package admit

import (
	"context"
	"net/netip"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/gen"
)

// Config is the admission policy. The zero value lets anyone in without
// limits, with the default topic length.
type Config struct {
	// Keys, when set, are the API keys every API request must present
	// (Authorization: Bearer); nil lets anyone in.
	Keys *Keys
	// PublicTopics may be read without a key ("*": every topic).
	PublicTopics []string
	Limits       Limits
	TopicMaxLen  int // events a topic keeps for replay; 0 means DefaultTopicMaxLen
	// Counter keeps the counts of the per-key limits; nil counts in this
	// process. Give every node the same shared Counter (redis.Limits) for
	// the limits to hold across them.
	Counter Counter
	// TrustedProxies are the proxies (load balancers) whose
	// X-Forwarded-For names the client (see Identify); from any other
	// peer the header is ignored.
	TrustedProxies []netip.Prefix
	// Observer, when set, is told of refusals, resumes and publishes (for
	// metrics).
	Observer Observer
	// Conversations, when set, keeps the chats that name a conversation
	// (see Pass.Start); without it such chats are refused.
	Conversations Conversations
}

// DefaultTopicMaxLen is Config.TopicMaxLen's default.
const DefaultTopicMaxLen = 1000

// Gate admits requests by a Config, over one store and one table of models.
// Every transport of a node shares one Gate, so that a caller's rate budget
// and stream places are counted once, whatever it connects with. It is
// safe for concurrent use.
type Gate struct {
	cfg    Config
	store  sluice.Store
	models *Models
	lim    *limiter
	obs    Observer
}

// New returns a Gate that opens logs in store and finds models in models.
func New(cfg Config, store sluice.Store, models *Models) *Gate {
	if cfg.TopicMaxLen <= 0 {
		cfg.TopicMaxLen = DefaultTopicMaxLen
	}
	if models == nil {
		models = &Models{}
	}
	obs := cfg.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	return &Gate{cfg: cfg, store: store, models: models, lim: newLimiter(cfg.Limits, cfg.Counter), obs: obs}
}

// Models returns the table of models the gate admits requests for.
func (g *Gate) Models() *Models { return g.models }

// Caller is who sends a request, as Identify found it.
type Caller struct {
	Key  string // the name of the API key presented; "" when there is none
	Addr string // the client's address, without its port

	noKey bool // the server has keys and the request presented none
}

// budget names the rate budget the caller draws on: its key's, else its
// address's.
func (c Caller) budget() string {
	if c.Key != "" {
		return c.Key
	}
	return "addr:" + c.Addr
}

// Identify finds the caller of a request from its Authorization header and
// its address: the remote address (host:port, as net/http gives it), or,
// when that is one of Config.TrustedProxies, the client's address that
// forwardedFor (the X-Forwarded-For header's values, in order) names. A
// key that is presented and wrong is EUNAUTHORIZED at once; a missing one
// is only refused by the operations that need one (public topics do not).
func (g *Gate) Identify(authorization, remoteAddr string, forwardedFor []string) (Caller, error) {
	c := Caller{Addr: clientAddr(remoteAddr, forwardedFor, g.cfg.TrustedProxies)}
	if g.cfg.Keys == nil {
		return c, nil
	}
	if authorization == "" {
		c.noKey = true
		return c, nil
	}
	scheme, key, ok := strings.Cut(authorization, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return c, g.refuse("api-keys", errBadKey)
	}
	id, ok := g.cfg.Keys.lookup(strings.TrimSpace(key))
	if !ok {
		return c, g.refuse("api-keys", errBadKey)
	}
	c.Key = id
	return c, nil
}

// Pass is an admitted API operation: its caller had the key it needs and
// was charged for it. Its methods carry out the checks that depend on what
// the operation asks for.
type Pass struct {
	g *Gate
	c Caller
}

// Enter admits one API operation that needs a key (when the server has
// keys) and charges it to the caller's rate budget: ERATELIMIT past it,
// EUNAVAILABLE when a shared Counter cannot be reached.
func (g *Gate) Enter(ctx context.Context, c Caller) (*Pass, error) {
	if c.noKey {
		return nil, g.refuse("api-keys", errNoKey)
	}
	if err := g.lim.allow(ctx, c.budget()); err != nil {
		return nil, g.refuse("rate-limit", err)
	}
	return &Pass{g: g, c: c}, nil
}

// Caller returns who the operation is for: what it starts is owned by
// Caller().Key.
func (p *Pass) Caller() Caller { return p.c }

// Started is a chat that Start started: its generation, and where its
// messages are stored when it continues a conversation.
type Started struct {
	*gen.Generation
	ConversationID string // "" when the chat names no conversation
	MessageID      string // the answer's message in it
}

// Start starts answering req with m on runner, as a generation owned by
// the caller's key (gen.Runner.Start: ctx lends it its values, the request
// ID), having taken one of the key's places among its running generations
// (Limits.GenerationsPerKey; counted by Config.Counter, so across nodes
// when it is shared): ERATELIMIT when the key has none left. The place is given back when the model has
// finished, on the generation's own goroutine, so that nothing else waits
// for the generation to end.
//
// A chat that names a conversation (see Config.Conversations) is answered
// from the stored branch it continues; its messages and answer are named
// once the generation has started and stored off the request path (a
// failure to store them is logged, and the stream goes on); a service
// that is shutting down refuses them, which stops the generation and is
// returned. Every transport that starts chats comes here, so each can
// carry a conversation.
func (p *Pass) Start(ctx context.Context, runner *gen.Runner, req *sluice.ChatRequest, m sluice.Model) (*Started, error) {
	var stored func(context.Context, *gen.Generation) (string, string, error)
	if cs := p.g.cfg.Conversations; cs != nil {
		var err error
		if stored, err = cs.Prepare(ctx, p.c.Key, req); err != nil {
			return nil, err
		}
	}
	g, err := p.start(ctx, runner, req, m)
	if err != nil {
		return nil, err
	}
	st := &Started{Generation: g}
	if stored != nil {
		if st.ConversationID, st.MessageID, err = stored(ctx, g); err != nil {
			runner.Cancel(g.ID) // nobody will read it: the client is told of err
			return nil, err
		}
	}
	return st, nil
}

func (p *Pass) start(ctx context.Context, runner *gen.Runner, req *sluice.ChatRequest, m sluice.Model) (*gen.Generation, error) {
	release, err := p.g.lim.holdGeneration(ctx, p.c.Key)
	if err != nil {
		return nil, p.g.refuse("max-generations-per-key", err)
	}
	if release == nil { // no place to hold: the model as it is
		return runner.Start(ctx, p.c.Key, req, m)
	}
	g, err := runner.Start(ctx, p.c.Key, req, heldModel{Model: m, release: release})
	if err != nil {
		release() // Start failed before it ran the model
		return nil, err
	}
	return g, nil
}

// heldModel is a model whose answer holds a place in the limits, given
// back when its Stream returns. gen.Runner calls Stream exactly once for
// every generation it starts.
type heldModel struct {
	sluice.Model
	release func()
}

func (m heldModel) Stream(ctx context.Context, req *sluice.ChatRequest, emit func(sluice.Delta) error) (sluice.Usage, error) {
	defer m.release()
	return m.Model.Stream(ctx, req, emit)
}

// Upstream names the upstream of the model it holds, if it has one, so
// that the generation's log line still names it.
func (m heldModel) Upstream() string {
	if u, ok := m.Model.(interface{ Upstream() string }); ok {
		return u.Upstream()
	}
	return ""
}

// Chat decodes and checks a chat completion request body (see DecodeChat
// and Limits), and finds the model it names.
func (p *Pass) Chat(body []byte) (*sluice.ChatRequest, sluice.Model, error) {
	req, err := DecodeChat(body)
	if err != nil {
		return nil, nil, err
	}
	if err := p.g.checkConversation(req); err != nil {
		return nil, nil, err
	}
	if limit, err := p.g.cfg.Limits.checkChat(req); err != nil {
		return nil, nil, p.g.refuse(limit, err)
	}
	m, err := p.g.models.Lookup(req.Model)
	if err != nil {
		return nil, nil, err
	}
	return req, m, nil
}

// Stream returns the log of generation id, to read or stop, if the caller
// may use it: ENOTFOUND for no such generation, EFORBIDDEN for one started
// with another key.
func (p *Pass) Stream(ctx context.Context, id string) (sluice.Log, error) {
	l, err := p.g.store.Open(ctx, gen.LogName(id), false, sluice.LogOptions{})
	if err != nil {
		return nil, err
	}
	if owner := l.Owner(); owner != "" && owner != p.c.Key {
		return nil, p.g.refuse("api-keys", errNotYours)
	}
	return l, nil
}

// Connect admits a long-lived connection that carries operations of its
// own (a /ws upgrade). It needs a key when the server has keys, unless
// some topics are public: a caller without one may then read those over
// the connection, as over HTTP, and every other operation it sends is
// refused as the same HTTP request would be. Connecting is not charged to
// the rate budget (each operation is) but takes a place in the stream
// limits (see OpenStream).
func (g *Gate) Connect(c Caller) (release func(), err error) {
	if c.noKey && len(g.cfg.PublicTopics) == 0 {
		return nil, g.refuse("api-keys", errNoKey)
	}
	return g.OpenStream(c)
}

// OpenStream takes a place for one of the caller's streams in the stream
// limits, or refuses it: ERATELIMIT for an address over its share,
// EUNAVAILABLE for a full node. release must be called when the stream
// ends; more than once is harmless.
func (g *Gate) OpenStream(c Caller) (release func(), err error) {
	release, limit, err := g.lim.openStream(c.Addr)
	if err != nil {
		return nil, g.refuse(limit, err)
	}
	return release, nil
}
