package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/api"
)

// heldStore is a real conversation store whose UpdateMessage waits until
// the test lets it go: a database too loaded to store an answer's batches
// and end before the client's next message.
type heldStore struct {
	sluice.ConversationStore
	held chan struct{} // closed: updates go through
}

func (s *heldStore) UpdateMessage(ctx context.Context, id string, u sluice.MessageUpdate) error {
	select {
	case <-s.held:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.ConversationStore.UpdateMessage(ctx, id, u)
}

// TestAFollowUpSeesTheWholeAnswerBeforeItIsStored: a client that sends its
// next message the instant the answer's [DONE] arrives, while no word of
// that answer is stored yet, gets its message answered after the whole
// answer: the model is given it from the answer's stream.
func TestAFollowUpSeesTheWholeAnswerBeforeItIsStored(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		echo := &echoModel{}
		hs := &heldStore{held: make(chan struct{})}
		e := convEnv(t, func(t *testing.T) sluice.ConversationStore { hs.ConversationStore = open(t); return hs },
			envOptions{Models: map[string]sluice.Model{"echo": echo}}, false)
		release := func() {
			select {
			case <-hs.held:
			default:
				close(hs.held)
			}
		}
		t.Cleanup(release) // before the server stops, which waits for the recorders
		c := createConv(t, e, map[string]any{"items": []map[string]any{{"role": "system", "content": "S"}}})

		resp := do(t, e, "POST", "/v1/chat/completions", chatBody("U1", "model", "echo", "conversation", c.ID))
		first := resp.Header.Get(api.HeaderMessageID)
		if txt, last := content(t, events(t, resp, -1)); txt != "S|U1|" || last != "[DONE]" {
			t.Fatalf("first answer %q, last %q", txt, last)
		}
		if it := ok[itemJSON](t, do(t, e, "GET", "/v1/conversations/"+c.ID+"/items/"+first, nil)); it.Status != "in_progress" || text(it) != "" {
			t.Fatalf("the first answer is stored as %q, %s: the premise (nothing of it stored yet) does not hold", text(it), it.Status)
		}

		resp = do(t, e, "POST", "/v1/chat/completions", chatBody("U2", "model", "echo", "conversation", c.ID))
		second := resp.Header.Get(api.HeaderMessageID)
		if txt, _ := content(t, events(t, resp, -1)); txt != "S|U1|S|U1||U2|" {
			t.Fatalf("the follow-up was answered from %q, want the whole first answer in it", txt)
		}
		release()
		if it := waitItem(t, e, c.ID, second, "the follow-up's answer stored", completed); text(it) != "S|U1|S|U1||U2|" {
			t.Fatalf("stored %q", text(it))
		}
		waitItem(t, e, c.ID, first, "the first answer stored", completed)
		items := itemsAsc(t, e, c.ID)
		if len(items) != 5 || items[2].ID != first || *items[3].ParentID != first || text(items[2]) != "S|U1|" {
			t.Fatalf("items %+v: want the follow-up under the first answer, which is stored whole", items)
		}
	})
}

// slowAddStore is a real conversation store whose AddItems takes a while
// longer: a loaded database under a chat's messages.
type slowAddStore struct {
	sluice.ConversationStore
	delay time.Duration
}

func (s *slowAddStore) AddItems(ctx context.Context, id string, items []sluice.Item) ([]sluice.Item, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.ConversationStore.AddItems(ctx, id, items)
}

// TestAChatRightAfterAnotherContinuesIt: a chat's messages are stored off
// its request path, slowly here; the next chat on the same conversation,
// sent as soon as the first's IDs are known, still goes under the first
// one's answer (it waits for them to be stored), and the conversation's
// routes show them.
func TestAChatRightAfterAnotherContinuesIt(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		echo := &echoModel{}
		e := convEnv(t, func(t *testing.T) sluice.ConversationStore {
			return &slowAddStore{ConversationStore: open(t), delay: 300 * time.Millisecond}
		}, envOptions{Models: map[string]sluice.Model{"echo": echo}}, false)
		c := createConv(t, e, nil)

		first := do(t, e, "POST", "/v1/chat/completions", chatBody("U1", "model", "echo", "conversation", c.ID))
		answer := first.Header.Get(api.HeaderMessageID)
		second := do(t, e, "POST", "/v1/chat/completions", chatBody("U2", "model", "echo", "conversation", c.ID))
		if txt, _ := content(t, events(t, second, -1)); txt != "U1|U1||U2|" {
			t.Fatalf("the second chat was answered from %q, want the first chat and its answer in it", txt)
		}
		events(t, first, -1)
		items := itemsAsc(t, e, c.ID)
		if len(items) != 4 || items[1].ID != answer || *items[2].ParentID != answer || text(items[2]) != "U2" {
			t.Fatalf("items %+v: want the second chat under the first one's answer %s", items, answer)
		}
	})
}
