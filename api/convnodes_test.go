package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/postgres"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// TestConversationsAreSharedAcrossNodes: two nodes on one Redis and one
// PostgreSQL: a conversation made and chatted in on one is read whole on
// the other, once the other's change feed follower is told of it.
func TestConversationsAreSharedAcrossNodes(t *testing.T) {
	r := testenv.StartRedis(t)
	url := testenv.StartPostgres(t)
	node := func() *env {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conv, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conv.Close() })
		return redisNode(t, r, envOptions{Conversations: conv})
	}
	a, b := node(), node()

	feed := do(t, b, "GET", "/v1/conversations/events", nil)
	rd := sse.NewReader(feed.Body)
	c := createConv(t, a, map[string]any{"title": "from a"})
	ev, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	var ce wire.ConversationEvent
	if err := json.Unmarshal([]byte(ev.Data), &ce); err != nil || ce.Type != "conversation.created" || ce.ID != c.ID {
		t.Fatalf("node b's feed got %q (%v); want %s created on node a", ev.Data, err, c.ID)
	}

	resp := do(t, a, "POST", "/v1/chat/completions", chatBody("hello", "conversation", c.ID))
	msg := resp.Header.Get("Sluice-Message-ID")
	streamed, _ := content(t, events(t, resp, -1))
	// Node a stores the chat's messages beside its stream; node b's feed
	// tells when they are there.
	if ev, err = rd.Next(); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(ev.Data), &ce); err != nil || ce.Type != "conversation.updated" || ce.ID != c.ID {
		t.Fatalf("node b's feed got %q (%v); want %s updated by the chat on node a", ev.Data, err, c.ID)
	}
	if it := waitItem(t, b, c.ID, msg, "the answer on node b", completed); text(it) != streamed || !strings.Contains(streamed, "demo") {
		t.Fatalf("node b reads %q; node a streamed %q", text(it), streamed)
	}
}

// TestAConversationBodyOverTheLimitIs413: conversation routes bound their
// bodies as every route does.
func TestAConversationBodyOverTheLimitIs413(t *testing.T) {
	forEachStore(t, func(t *testing.T, open openFunc) {
		const limit = 1024
		e := convEnv(t, open, envOptions{API: api.Config{MaxBodyBytes: limit}}, false)
		c := createConv(t, e, nil)
		body := func(n int) map[string]any { // a body of exactly n bytes
			base, _ := json.Marshal(map[string]any{"items": []map[string]any{{"role": "user", "content": ""}}})
			return map[string]any{"items": []map[string]any{{"role": "user", "content": strings.Repeat("x", n-len(base))}}}
		}
		ok[wire.List[itemJSON]](t, do(t, e, "POST", "/v1/conversations/"+c.ID+"/items", body(limit)))
		wantStatus(t, do(t, e, "POST", "/v1/conversations/"+c.ID+"/items", body(limit+1)), 413, "request_too_large")
	})
}
