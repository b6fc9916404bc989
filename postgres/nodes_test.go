package postgres

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// Tests of what only several nodes on one database can do to each other.

func TestASweepRacingTheEndsOfMessagesMarksOnlyThoseNotEnded(t *testing.T) {
	url := testenv.StartPostgres(t)
	sweeper, writer := openStore(t, url), openStore(t, url)
	ctx := ctxFor(t)
	const n = 40
	batch := make([]sluice.Item, n)
	for i := range batch {
		batch[i] = sluice.Item{Role: "assistant", Status: sluice.StatusInProgress, Text: fmt.Sprint("part ", i)}
	}
	// Each answer in a conversation of its own, so that the sweep takes
	// many row locks while the writer takes them one by one.
	var ids []string
	for i := range n {
		_, its, err := writer.CreateConversation(ctx, sluice.Conversation{}, batch[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, its[0].ID)
	}
	var (
		wg        sync.WaitGroup
		swept     int
		sweepErr  error
		conflicts int
	)
	// The sweep starts when half the messages have ended, and runs while
	// the writer ends the others.
	half := make(chan struct{})
	wg.Go(func() {
		<-half
		var sw []sluice.Swept
		sw, sweepErr = sweeper.SweepInterrupted(ctx, time.Now().Add(time.Hour))
		swept = sluice.SweptMessages(sw)
	})
	wg.Go(func() {
		for i, id := range ids {
			if i == n/2 {
				close(half)
			}
			err := writer.UpdateMessage(ctx, id, sluice.MessageUpdate{Text: fmt.Sprint("whole ", i), Status: sluice.StatusCompleted})
			switch sluice.ErrorCode(err) {
			case "":
			case sluice.ECONFLICT:
				conflicts++
			default:
				t.Errorf("ending message %d: %v", i, err)
			}
		}
	})
	wg.Wait()
	if sweepErr != nil {
		t.Fatal(sweepErr)
	}
	if swept > n/2 {
		t.Fatalf("the sweep marked %d messages; %d had ended before it began", swept, n/2)
	}
	if swept != conflicts {
		t.Fatalf("the sweep marked %d messages, and %d ends found theirs already marked: a message was marked after it ended, or an end was lost", swept, conflicts)
	}
	t.Logf("swept %d of %d", swept, n)
	interrupted := 0
	for i, id := range ids {
		var status, text string
		if err := writer.pool.QueryRow(ctx, "SELECT status, text FROM items WHERE id = $1", id).Scan(&status, &text); err != nil {
			t.Fatal(err)
		}
		switch {
		case status == string(sluice.StatusInterrupted) && text == fmt.Sprint("part ", i):
			interrupted++
		case status == string(sluice.StatusCompleted) && text == fmt.Sprint("whole ", i):
		default:
			t.Fatalf("message %d is %s with %q: neither swept with its text kept nor ended whole", i, status, text)
		}
	}
	if interrupted != swept {
		t.Fatalf("%d messages are interrupted, the sweep counted %d", interrupted, swept)
	}
}

func TestUpdatedAtMovesOnWhenANodesClockIsBehind(t *testing.T) {
	url := testenv.StartPostgres(t)
	ahead, behind := openStore(t, url), openStore(t, url)
	behind.now = func() time.Time { return time.Now().Add(-time.Hour) }
	ctx := ctxFor(t)
	c, its, err := ahead.CreateConversation(ctx, sluice.Conversation{}, []sluice.Item{{Role: "assistant", Status: sluice.StatusInProgress}})
	if err != nil {
		t.Fatal(err)
	}
	title := "renamed by the node behind"
	got, err := behind.UpdateConversation(ctx, c.ID, sluice.ConversationPatch{Title: &title})
	if err != nil || !got.UpdatedAt.After(c.UpdatedAt) {
		t.Fatalf("renamed by a node an hour behind: UpdatedAt %v (%v), want after %v", got.UpdatedAt, err, c.UpdatedAt)
	}
	added, err := behind.AddItems(ctx, c.ID, []sluice.Item{{Role: "user", Text: "later"}})
	if err != nil || added[0].CreatedAt.Before(its[0].CreatedAt) {
		t.Fatalf("an item added by the node behind: %+v, %v; want it created no earlier than %v", added, err, its[0].CreatedAt)
	}
	if err := behind.UpdateMessage(ctx, its[0].ID, sluice.MessageUpdate{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	it, err := behind.Item(ctx, c.ID, its[0].ID)
	if err != nil || !it.UpdatedAt.After(its[0].UpdatedAt) {
		t.Fatalf("a message updated by the node behind: UpdatedAt %v (%v), want after %v", it.UpdatedAt, err, its[0].UpdatedAt)
	}
}

func TestSearchFoldsCaseWhateverTheDatabasesLocale(t *testing.T) {
	base := testenv.StartPostgres(t)
	// A database made with the C locale, where lower() and ILIKE fold
	// only ASCII letters.
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	cdb := u.Path[1:] + "_c"
	conn, err := pgx.Connect(ctxFor(t), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctxFor(t))
	if _, err := conn.Exec(ctxFor(t), "CREATE DATABASE "+cdb+" TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + cdb
	s := openStore(t, u.String())
	ctx := ctxFor(t)
	var folds bool
	if err := s.pool.QueryRow(ctx, "SELECT 'ÉTÉ' ILIKE 'été'").Scan(&folds); err != nil || folds {
		t.Fatalf("the C-locale database folds É with ILIKE (%v, %v): the test proves nothing", folds, err)
	}
	c, _, err := s.CreateConversation(ctx, sluice.Conversation{Owner: "o", Title: "ÀBÇ"}, []sluice.Item{{Role: "user", Text: "L'ÉTÉ À ZÜRICH"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"àbç", "été à zürich", "ÉtÉ"} {
		got, _, err := s.Conversations(ctx, sluice.ConversationQuery{Owner: "o", Search: q})
		if err != nil || len(got) != 1 || got[0].ID != c.ID {
			t.Fatalf("search %q in a C-locale database: %+v, %v; want the conversation", q, got, err)
		}
	}
}
