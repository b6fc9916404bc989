package convo_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/postgres"
	"github.com/sluice-dev/sluice/sqlite"
)

// benchStores opens each real conversation store for a benchmark.
var benchStores = []struct {
	name string
	open func(b *testing.B) sluice.ConversationStore
}{
	{"sqlite", func(b *testing.B) sluice.ConversationStore {
		s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "sluice.db"))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
	{"postgres", func(b *testing.B) sluice.ConversationStore {
		s, err := postgres.Open(context.Background(), testenv.StartPostgres(b))
		if err != nil {
			b.Fatal(err)
		}
		return s
	}},
}

// BenchmarkChatStart measures what a chat that continues a conversation
// costs before its client is answered: Prepare, the generation's start and
// the function Prepare returned (admit.Pass.Start's path), on real stores.
// Each answer is a few tokens, so its recorder's writes run beside the
// next chats as they would on a busy server; the chat's own write is
// waited for (untimed) before the next chat, as a client reads an answer
// to its end before it sends the next message.
func BenchmarkChatStart(b *testing.B) {
	for _, st := range benchStores {
		// Chats a conversation: 3, as `sluice bench --conv-rounds 3` has
		// them, and 200, where the branch read grows with the
		// conversation.
		for _, rounds := range []int{3, 200} {
			b.Run(fmt.Sprintf("%s/rounds=%d", st.name, rounds), func(b *testing.B) { benchChatStart(b, st.open(b), rounds) })
		}
	}
}

func benchChatStart(b *testing.B, store sluice.ConversationStore, rounds int) {
	logs := memory.New(memory.Options{Retention: time.Minute})
	quiet := slog.New(slog.DiscardHandler)
	runner := gen.NewRunner(gen.Options{Store: logs, Logger: quiet})
	svc := convo.New(convo.Options{Store: store, Logs: logs, SweepEvery: -1, Logger: quiet})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		runner.Shutdown(ctx)
		svc.Shutdown(ctx)
		store.Close()
		logs.Close()
	})
	model := demo.New(demo.Options{MaxTokens: 5})
	ctx := context.Background()
	var conv string
	b.ResetTimer()
	for i := range b.N {
		if i%rounds == 0 {
			b.StopTimer()
			c, _, err := svc.Create(ctx, "", convo.CreateInput{})
			if err != nil {
				b.Fatal(err)
			}
			conv = c.ID
			b.StartTimer()
		}
		ref, _ := json.Marshal(conv)
		content, _ := json.Marshal("hello")
		req := &sluice.ChatRequest{Model: "demo", Stream: true,
			Messages: []sluice.Message{{Role: "user", Content: content}},
			Extra:    map[string]json.RawMessage{convo.FieldConversation: ref}}
		stored, err := svc.Prepare(ctx, "", req)
		if err != nil {
			b.Fatal(err)
		}
		g, err := runner.Start(ctx, "", req, model)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := stored(ctx, g); err != nil {
			b.Fatal(err)
		}
		// As a client reads the answer to its end before it sends the
		// next message; the answer's recorder writes on beside the next
		// chats.
		b.StopTimer()
		<-g.Done()
		if _, err := svc.Get(ctx, "", conv); err != nil { // waits for the chat's messages to be stored
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
