package sluice

import (
	"context"
	"time"
)

// A conversation is an ordered tree of messages kept on the server: every
// message but the first has a parent, and a message answered again (or a
// user message edited) gets a sibling, as in ChatGPT. The branch a client
// shows is the path from the root to one leaf; Conversation.CurrentID names
// the leaf last added to.
//
// The HTTP API follows OpenAI's Conversations API ("object":"conversation",
// messages as items with content parts); see docs/conversations.md. Stores
// (sqlite/, postgres/) implement ConversationStore, and one contract test
// suite (internal/convtest) proves them alike.

// MessageStatus says how far an assistant message has come. User, system
// and developer messages are always StatusCompleted.
type MessageStatus string

const (
	// StatusInProgress: the answer is streaming; Text holds what has been
	// stored so far (it is written in batches, at most once a second).
	StatusInProgress MessageStatus = "in_progress"
	StatusCompleted  MessageStatus = "completed"
	StatusCancelled  MessageStatus = "cancelled" // a client stopped it; Text holds what came before
	StatusFailed     MessageStatus = "failed"    // the model failed; Error says why
	// StatusInterrupted: the node writing the answer died under it (its
	// heartbeat went stale, see ConversationStore.SweepInterrupted); Text
	// holds what had been stored.
	StatusInterrupted MessageStatus = "interrupted"
)

// Final reports whether s is an end state, which a message never leaves.
func (s MessageStatus) Final() bool { return s != StatusInProgress && s != "" }

// Conversation is the head of a conversation; its messages are Items.
type Conversation struct {
	ID        string // "conv_" and 32 hex digits
	Owner     string // the API key name that made it; "" when the server has no keys
	Title     string
	Metadata  map[string]string // up to 16 pairs, as OpenAI allows
	CurrentID string            // the message last added; "" when there is none
	CreatedAt time.Time
	UpdatedAt time.Time // the last change to it or to any of its messages
}

// Item is one message of a conversation.
type Item struct {
	ID             string // "msg_" and 32 hex digits
	ConversationID string
	ParentID       string // "" for a root message
	Role           string // "user", "assistant", "system" or "developer"
	Text           string
	Status         MessageStatus
	// For assistant messages:
	Model    string
	StreamID string // the generation that wrote it (GET /v1/streams/{id} while it runs)
	Usage    *Usage // nil until the model reported it
	Error    *ItemError
	// CreatedAt orders the messages of a conversation; Seq breaks ties and
	// is the order a store returns them in (increasing within a
	// conversation, assigned by the store).
	CreatedAt time.Time
	UpdatedAt time.Time
	Seq       int64
}

// ItemError is why an assistant message failed, as Sluice's error object
// has it (the code, a finer kind, and the message shown to users).
type ItemError struct {
	Code    string `json:"code"`
	Kind    string `json:"kind,omitempty"`
	Message string `json:"message"`
}

// MessageUpdate changes an in-progress assistant message. Text replaces the
// stored text (the whole answer so far, not a piece of it). A Status that
// is Final ends the message; an update of a message already final fails
// with ECONFLICT, so that a late batch cannot overwrite the end, nor a
// sweeper's "interrupted" the real end.
type MessageUpdate struct {
	Text   string
	Status MessageStatus // "" or StatusInProgress: still streaming
	Usage  *Usage
	Error  *ItemError
}

// ConversationPatch changes a conversation's head; nil fields stay.
type ConversationPatch struct {
	Title    *string
	Metadata map[string]string // replaces the whole map when not nil
}

// ConversationQuery selects a page of an owner's conversations, newest
// change first.
type ConversationQuery struct {
	Owner  string // required; "" matches conversations made without keys
	Search string // when set, only conversations whose title or any message contains it (case-insensitive)
	After  string // a conversation ID from the previous page; "" for the first page
	Limit  int    // 1 to 100
}

// ItemQuery selects a page of a conversation's items.
type ItemQuery struct {
	After string // an item ID from the previous page; "" for the first page
	Limit int    // 1 to 100
	Desc  bool   // newest first, OpenAI's default order
}

// Bounds a conversation keeps, checked by every store.
const (
	MaxConversationItems = 10_000
	MaxConversationBytes = 16 << 20 // the text of all its messages together
	MaxTitleBytes        = 512
	MaxMetadataPairs     = 16
)

// Continuation is what a chat that continues a conversation reads of it
// in one go (ConversationStore.Continuation): its head, the branch the
// chat answers under, and its size, against the conversation's bounds.
type Continuation struct {
	Conversation Conversation
	// Branch is the path from the root to the message asked for, root
	// first; empty when the conversation has no messages, or when the
	// message asked for is not one of them.
	Branch []Item
	Items  int // the conversation's messages
	Bytes  int // the bytes of their texts
}

// ConversationStore keeps conversations. Implementations are safe for
// concurrent use, and several nodes may share one (PostgreSQL). Missing
// conversations and items give ENOTFOUND; a conversation over its bounds
// ETOOLARGE; a database that cannot be reached EUNAVAILABLE (kind
// "database_unavailable"). Stores know nothing of owners but to keep them:
// the caller checks that a conversation is the caller's.
type ConversationStore interface {
	// CreateConversation stores c (its ID, times and CurrentID are set
	// here) with items in order, each the parent of the next unless it
	// names a ParentID; it returns the conversation and items as stored.
	// An item that comes with an ID ("msg_" and 32 hex digits, else
	// EINVALID) keeps it, so that a caller may name its items before they
	// are stored; an ID already taken is ECONFLICT. Items without one get
	// one here. AddItems likewise.
	CreateConversation(ctx context.Context, c Conversation, items []Item) (Conversation, []Item, error)
	Conversation(ctx context.Context, id string) (Conversation, error)
	UpdateConversation(ctx context.Context, id string, p ConversationPatch) (Conversation, error)
	// DeleteConversation removes the conversation and its items.
	DeleteConversation(ctx context.Context, id string) error
	// Conversations returns a page and whether more follow.
	Conversations(ctx context.Context, q ConversationQuery) ([]Conversation, bool, error)

	// AddItems appends items to conversation id, as CreateConversation
	// does, an item without ParentID going under the conversation's
	// CurrentID (for the first, then each under the one before); a ParentID
	// not in the conversation is EINVALID. The last item becomes CurrentID.
	AddItems(ctx context.Context, id string, items []Item) ([]Item, error)
	Item(ctx context.Context, conversationID, itemID string) (Item, error)
	// Items returns a page of the conversation's items in Seq order and
	// whether more follow.
	Items(ctx context.Context, conversationID string, q ItemQuery) ([]Item, bool, error)
	// Branch returns the path from the root to itemID, root first.
	Branch(ctx context.Context, conversationID, itemID string) ([]Item, error)
	// Continuation reads conversation id, its size and the branch from
	// the root to itemID ("": to its CurrentID) as one read, the fewest
	// round trips the database allows: what a chat needs before it starts.
	// A missing conversation is ENOTFOUND; an itemID not in it leaves
	// Branch empty.
	Continuation(ctx context.Context, id, itemID string) (Continuation, error)
	// DeleteItem removes an item; its children move under its parent.
	DeleteItem(ctx context.Context, conversationID, itemID string) error

	// UpdateMessage applies u to an in-progress message and refreshes its
	// heartbeat (see SweepInterrupted).
	UpdateMessage(ctx context.Context, itemID string, u MessageUpdate) error
	// Touch refreshes the heartbeat of in-progress messages without
	// changing them: the writer of a long-quiet answer calls it.
	Touch(ctx context.Context, itemIDs ...string) error
	// SweepInterrupted marks StatusInterrupted every in-progress message
	// whose heartbeat is older than staleBefore, keeping its text, and
	// returns the conversations it changed, each once, in no set order.
	SweepInterrupted(ctx context.Context, staleBefore time.Time) ([]Swept, error)

	// Close releases the store's resources.
	Close() error
}

// Swept is a conversation in which SweepInterrupted marked messages: its
// owner's change feed is told of it.
type Swept struct {
	ConversationID string
	Owner          string
	Messages       int // how many it marked interrupted
}

// SweptMessages is how many messages a sweep marked in all.
func SweptMessages(sw []Swept) int {
	n := 0
	for _, c := range sw {
		n += c.Messages
	}
	return n
}
