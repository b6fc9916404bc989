package convo_test

import (
	"context"
	"encoding/json"
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
// next chats as they would on a busy server.
func BenchmarkChatStart(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			store := st.open(b)
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
				if i%200 == 0 { // a conversation a few hundred messages long at most
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
				b.StopTimer()
				<-g.Done()
				b.StartTimer()
			}
		})
	}
}
