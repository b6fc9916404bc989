// Package convtest is the contract of sluice.ConversationStore as a test
// suite: the SQLite and the PostgreSQL store run the same tests, so that
// the service above them relies on behaviour proven of each. It holds what
// conversation.go promises, and settles what it leaves open, the same way
// for every store:
//
//   - IDs ("conv_"/"msg_" and 32 hex digits), times, Seq, CurrentID and
//     ConversationID are the store's: what a caller puts there is ignored,
//     but for an item's ID, which the caller may give (of that shape, or
//     EINVALID; one taken is ECONFLICT and stores nothing).
//     Times come back from every read exactly as the write returned them
//     (a store truncates to its precision before it returns them), and
//     UpdatedAt strictly increases with each change of a conversation.
//   - An item without a Status is StatusCompleted; only an assistant
//     message may have another status, and an unknown status, role, or text
//     that is not valid UTF-8 or holds a NUL byte is EINVALID (PostgreSQL
//     text cannot hold either, and the stores stay alike).
//   - In CreateConversation a ParentID can name nothing yet: EINVALID.
//   - A title over MaxTitleBytes, or metadata over MaxMetadataPairs or over
//     convcheck's bounds of a key and a value (OpenAI's), is a bad request
//     field: EINVALID. A conversation over MaxConversationItems or
//     MaxConversationBytes (the bytes, not runes, of its messages' texts) is
//     ETOOLARGE. A failed write changes nothing (a batch is all or nothing).
//   - A page Limit of 0 means 20 (OpenAI's default); below 0 or over 100 is
//     EINVALID. An After that names no item of the conversation (or no
//     conversation of the owner) is EINVALID.
//   - Unknown IDs of any shape are ENOTFOUND, as is an item asked for under
//     a conversation it is not in.
//   - DeleteItem of CurrentID makes its parent current ("" for a root).
//   - Touch ignores IDs that are unknown or no longer in progress.
//   - Search matches a substring literally (no wildcards), case-insensitive
//     as strings.ToLower folds, in the title or any message's text.
//
// Package internal/convcheck holds the checks and IDs this asks for, for
// every store to use. A store's test runs the suite so:
//
//	func TestConversationStoreContract(t *testing.T) {
//		convtest.Run(t, func(t *testing.T) convtest.Open {
//			path := filepath.Join(t.TempDir(), "sluice.db")
//			return func(t *testing.T) sluice.ConversationStore { return open(t, path) }
//		})
//	}
package convtest

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
)

// Open opens a store on one set of data: the first call on new, empty data,
// each later call on the same data again, as a restarted process would. The
// suite closes every store it opens, once, before it opens the next.
type Open func(t *testing.T) sluice.ConversationStore

// NewStore returns an Open on a set of data of t's own, which no other test
// shares (SweepInterrupted sweeps all of a store) and which is removed when
// t ends.
type NewStore func(t *testing.T) Open

// Run runs the contract on the stores that newStore makes, each test in
// parallel with the others on data of its own.
func Run(t *testing.T, newStore NewStore) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore)
		})
	}
}

// tests is the contract, one behaviour a test; the files of this package
// hold them by subject.
var tests = []struct {
	name string
	fn   func(t *testing.T, newStore NewStore)
}{
	{"CreateSetsIDsTimesAndCurrent", testCreate},
	{"EveryFieldOfAnItemIsKept", testItemFields},
	{"AddItemsGoUnderTheCurrentItem", testAddUnderCurrent},
	{"AnExplicitParentMakesASibling", testSiblings},
	{"AForeignOrUnknownParentIsInvalidAndStoresNothing", testBadParent},
	{"UnknownOrForeignIDsAreNotFound", testNotFound},
	{"DeleteItemMovesChildrenUnderItsParent", testDeleteItem},
	{"ItemsPageInSeqOrderBothWays", testItemPages},
	{"ConversationsListNewestChangeFirst", testListOrder},
	{"SearchFindsTitlesAndTextsCaseInsensitively", testSearch},
	{"OwnersAreKeptApart", testOwners},
	{"UpdateConversationChangesOnlyWhatItNames", testUpdateConversation},
	{"DeleteConversationRemovesItsItems", testDeleteConversation},
	{"AConversationHoldsAtMostMaxItems", testMaxItems},
	{"AConversationHoldsAtMostMaxBytes", testMaxBytes},
	{"TitleAndMetadataBounds", testHeadBounds},
	{"BadItemsAreInvalid", testBadItems},
	{"UpdateMessageReplacesTextUntilTheEnd", testUpdateMessage},
	{"SweepMarksOnlyStaleInProgressMessages", testSweep},
	{"TouchAndUpdatesKeepAMessageFromTheSweep", testHeartbeat},
	{"ConcurrentWritersLoseNothing", testConcurrent},
	{"UnicodeIsKeptExactly", testUnicode},
	{"AReopenedStoreKeepsEverything", testReopen},
	{"AnItemKeepsTheIDItWasGiven", testGivenIDs},
	{"ContinuationReadsHeadSizeAndBranch", testContinuation},
}

// longTime bounds every test's calls: long enough for a loaded machine and
// the race detector (a batch of MaxConversationItems is slow under it),
// short enough to fail rather than hang.
const longTime = 2 * time.Minute

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), longTime)
	t.Cleanup(cancel)
	return ctx
}

// opened opens a store with open and closes it when t ends, unless the
// test closes it first with the returned func.
func opened(t *testing.T, open Open) (sluice.ConversationStore, func()) {
	t.Helper()
	s := open(t)
	var once sync.Once
	closeIt := func() {
		once.Do(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(closeIt)
	return s, closeIt
}

// newStore opens a store on new data for t, closed when t ends.
func newStore(t *testing.T, ns NewStore) sluice.ConversationStore {
	t.Helper()
	s, _ := opened(t, ns(t))
	return s
}

func user(text string) sluice.Item { return sluice.Item{Role: "user", Text: text} }

func answer(text string, st sluice.MessageStatus) sluice.Item {
	return sluice.Item{Role: "assistant", Text: text, Status: st, Model: "demo", StreamID: "gen_" + text}
}

func create(t *testing.T, s sluice.ConversationStore, c sluice.Conversation, items ...sluice.Item) (sluice.Conversation, []sluice.Item) {
	t.Helper()
	c, got, err := s.CreateConversation(ctxFor(t), c, items)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(got) != len(items) {
		t.Fatalf("create of %d items returned %d", len(items), len(got))
	}
	return c, got
}

func add(t *testing.T, s sluice.ConversationStore, id string, items ...sluice.Item) []sluice.Item {
	t.Helper()
	got, err := s.AddItems(ctxFor(t), id, items)
	if err != nil {
		t.Fatalf("add items: %v", err)
	}
	if len(got) != len(items) {
		t.Fatalf("adding %d items returned %d", len(items), len(got))
	}
	return got
}

func conv(t *testing.T, s sluice.ConversationStore, id string) sluice.Conversation {
	t.Helper()
	c, err := s.Conversation(ctxFor(t), id)
	if err != nil {
		t.Fatalf("conversation %s: %v", id, err)
	}
	return c
}

func item(t *testing.T, s sluice.ConversationStore, convID, id string) sluice.Item {
	t.Helper()
	it, err := s.Item(ctxFor(t), convID, id)
	if err != nil {
		t.Fatalf("item %s: %v", id, err)
	}
	return it
}

// allItems reads every item of a conversation in Seq order, 100 a page.
func allItems(t *testing.T, s sluice.ConversationStore, convID string) []sluice.Item {
	t.Helper()
	var out []sluice.Item
	after := ""
	for {
		page, more, err := s.Items(ctxFor(t), convID, sluice.ItemQuery{After: after, Limit: 100})
		if err != nil {
			t.Fatalf("items of %s after %q: %v", convID, after, err)
		}
		out = append(out, page...)
		if !more {
			return out
		}
		after = page[len(page)-1].ID
	}
}

func branch(t *testing.T, s sluice.ConversationStore, convID, id string) []string {
	t.Helper()
	b, err := s.Branch(ctxFor(t), convID, id)
	if err != nil {
		t.Fatalf("branch to %s: %v", id, err)
	}
	return idsOf(b)
}

// list returns the IDs of one page of an owner's conversations.
func list(t *testing.T, s sluice.ConversationStore, q sluice.ConversationQuery) ([]string, bool) {
	t.Helper()
	cs, more, err := s.Conversations(ctxFor(t), q)
	if err != nil {
		t.Fatalf("conversations %+v: %v", q, err)
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids, more
}

func idsOf(items []sluice.Item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	return ids
}

func wantIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

// wantCode fails t unless err carries the application code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if sluice.ErrorCode(err) != code {
		t.Fatalf("%s: got %v, want code %q", what, err, code)
	}
}

var (
	convIDShape = regexp.MustCompile(`^conv_[0-9a-f]{32}$`)
	itemIDShape = regexp.MustCompile(`^msg_[0-9a-f]{32}$`)
)

// sameConv fails t unless a and b are the same conversation, field by field.
func sameConv(t *testing.T, what string, got, want sluice.Conversation) {
	t.Helper()
	if got.ID != want.ID || got.Owner != want.Owner || got.Title != want.Title || got.CurrentID != want.CurrentID ||
		!maps.Equal(got.Metadata, want.Metadata) || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// sameItem fails t unless a and b are the same item, field by field.
func sameItem(t *testing.T, what string, got, want sluice.Item) {
	t.Helper()
	if got.ID != want.ID || got.ConversationID != want.ConversationID || got.ParentID != want.ParentID ||
		got.Role != want.Role || got.Text != want.Text || got.Status != want.Status || got.Model != want.Model ||
		got.StreamID != want.StreamID || fmt.Sprint(deref(got.Usage)) != fmt.Sprint(deref(want.Usage)) ||
		fmt.Sprint(deref(got.Error)) != fmt.Sprint(deref(want.Error)) || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.UpdatedAt.Equal(want.UpdatedAt) || got.Seq != want.Seq {
		t.Fatalf("%s:\n got %s\nwant %s", what, show(got), show(want))
	}
}

func sameItems(t *testing.T, what string, got, want []sluice.Item) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d items %q, want %d %q", what, len(got), idsOf(got), len(want), idsOf(want))
	}
	for i := range got {
		sameItem(t, fmt.Sprintf("%s, item %d", what, i), got[i], want[i])
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func show(it sluice.Item) string {
	text := it.Text
	if len(text) > 40 {
		text = fmt.Sprintf("%.40s…(%d bytes)", text, len(text))
	}
	return fmt.Sprintf("{ID:%s Conv:%s Parent:%s Role:%s Text:%q Status:%s Model:%s Stream:%s Usage:%v Error:%v Created:%v Updated:%v Seq:%d}",
		it.ID, it.ConversationID, it.ParentID, it.Role, text, it.Status, it.Model, it.StreamID,
		deref(it.Usage), deref(it.Error), it.CreatedAt, it.UpdatedAt, it.Seq)
}
