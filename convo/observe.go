package convo

import (
	"context"
	"time"

	"github.com/sluice-dev/sluice"
)

// Observer is told what the Service writes to its store and how its
// recorders and sweeper fare, for metrics (prom implements it), without
// a dependency on a metrics library here. Its methods are called
// concurrently, from requests, recorders and the sweeper, and must return
// at once.
type Observer interface {
	// Wrote is told of every write to the store: the operation (one of
	// Operations), how long it took and its error (nil: it succeeded).
	Wrote(op string, d time.Duration, err error)
	// Batch is told of a recorder's write of an answer still streaming.
	Batch()
	// Recorded is told once per answer when its recorder ends: the status
	// it stored, or "not_stored" when the end could not be (the database
	// failed, or the message ended or went away under it).
	Recorded(status string)
	// Swept is told of every sweep: how many answers it marked
	// interrupted, and its error.
	Swept(marked int, err error)
}

// The write operations Observer.Wrote names, one per write method of
// sluice.ConversationStore.
const (
	OpCreateConversation = "create_conversation"
	OpUpdateConversation = "update_conversation"
	OpDeleteConversation = "delete_conversation"
	OpAddItems           = "add_items"
	OpDeleteItem         = "delete_item"
	OpUpdateMessage      = "update_message"
	OpTouch              = "touch"
	OpSweep              = "sweep"
)

// Operations lists every operation Observer.Wrote names.
var Operations = []string{OpCreateConversation, OpUpdateConversation, OpDeleteConversation,
	OpAddItems, OpDeleteItem, OpUpdateMessage, OpTouch, OpSweep}

// RecordedNotStored is the status Observer.Recorded names for an answer
// whose end was not stored.
const RecordedNotStored = "not_stored"

// nopObserver is the Observer of a Service given none.
type nopObserver struct{}

func (nopObserver) Wrote(string, time.Duration, error) {}
func (nopObserver) Batch()                             {}
func (nopObserver) Recorded(string)                    {}
func (nopObserver) Swept(int, error)                   {}

// observedStore times every write of the store it wraps and tells obs;
// reads pass through untouched. Wrapping the store, rather than timing
// each call site, keeps every write counted whoever makes it.
type observedStore struct {
	sluice.ConversationStore
	obs Observer
}

func (o observedStore) wrote(op string, start time.Time, err error) {
	o.obs.Wrote(op, time.Since(start), err)
}

func (o observedStore) CreateConversation(ctx context.Context, c sluice.Conversation, items []sluice.Item) (sluice.Conversation, []sluice.Item, error) {
	start := time.Now()
	c, stored, err := o.ConversationStore.CreateConversation(ctx, c, items)
	o.wrote(OpCreateConversation, start, err)
	return c, stored, err
}

func (o observedStore) UpdateConversation(ctx context.Context, id string, p sluice.ConversationPatch) (sluice.Conversation, error) {
	start := time.Now()
	c, err := o.ConversationStore.UpdateConversation(ctx, id, p)
	o.wrote(OpUpdateConversation, start, err)
	return c, err
}

func (o observedStore) DeleteConversation(ctx context.Context, id string) error {
	start := time.Now()
	err := o.ConversationStore.DeleteConversation(ctx, id)
	o.wrote(OpDeleteConversation, start, err)
	return err
}

func (o observedStore) AddItems(ctx context.Context, id string, items []sluice.Item) ([]sluice.Item, error) {
	start := time.Now()
	stored, err := o.ConversationStore.AddItems(ctx, id, items)
	o.wrote(OpAddItems, start, err)
	return stored, err
}

func (o observedStore) DeleteItem(ctx context.Context, conversationID, itemID string) error {
	start := time.Now()
	err := o.ConversationStore.DeleteItem(ctx, conversationID, itemID)
	o.wrote(OpDeleteItem, start, err)
	return err
}

func (o observedStore) UpdateMessage(ctx context.Context, itemID string, u sluice.MessageUpdate) error {
	start := time.Now()
	err := o.ConversationStore.UpdateMessage(ctx, itemID, u)
	o.wrote(OpUpdateMessage, start, err)
	return err
}

func (o observedStore) Touch(ctx context.Context, itemIDs ...string) error {
	start := time.Now()
	err := o.ConversationStore.Touch(ctx, itemIDs...)
	o.wrote(OpTouch, start, err)
	return err
}

func (o observedStore) SweepInterrupted(ctx context.Context, staleBefore time.Time) ([]sluice.Swept, error) {
	start := time.Now()
	sw, err := o.ConversationStore.SweepInterrupted(ctx, staleBefore)
	o.wrote(OpSweep, start, err)
	return sw, err
}
