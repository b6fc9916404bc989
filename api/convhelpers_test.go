package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/redis"
	"github.com/sluice-dev/sluice/sse"
	"github.com/sluice-dev/sluice/wire"
)

// openFunc opens a conversation store for a test.
type openFunc = func(t *testing.T) sluice.ConversationStore

// stores are the conversation stores every conversation test runs on.
var stores = []struct {
	name string
	open openFunc
}{
	{"sqlite", openSQLite},
	{"postgres", openPostgres},
}

// forEachStore runs f as a subtest on each conversation store.
func forEachStore(t *testing.T, f func(t *testing.T, open openFunc)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { f(t, s.open) })
	}
}

// convEnv is a server that keeps conversations in a store that open
// makes; keyed, it has the API keys of keyedEnv.
func convEnv(t *testing.T, open openFunc, o envOptions, keyed bool) *env {
	t.Helper()
	o.Conversations = open(t)
	if o.Conv.SweepEvery == 0 {
		o.Conv.SweepEvery = -1 // tests that sweep say so
	}
	if keyed {
		return keyedEnv(t, o)
	}
	return newEnv(t, o)
}

type (
	convJSON = wire.Conversation
	itemJSON = wire.Item
)

// do sends a request with a JSON body (nil: none) and the header pairs.
func do(t *testing.T, e *env, method, path string, body any, header ...string) *http.Response {
	t.Helper()
	return testenv.Do(t, e.Client, method, e.URL+path, body, header...)
}

// ok checks that resp is 200 and decodes it.
func ok[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		eb := decode[errorBody](t, resp)
		t.Fatalf("%s %s: status %d (%s), want 200", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, eb.Error.Message)
	}
	return decode[T](t, resp)
}

// createConv makes a conversation with the given body.
func createConv(t *testing.T, e *env, body any, header ...string) convJSON {
	t.Helper()
	return ok[convJSON](t, do(t, e, http.MethodPost, "/v1/conversations", body, header...))
}

// itemsAsc returns every item of conversation id, oldest first.
func itemsAsc(t *testing.T, e *env, id string, header ...string) []itemJSON {
	t.Helper()
	return ok[wire.List[itemJSON]](t, do(t, e, http.MethodGet, "/v1/conversations/"+id+"/items?order=asc&limit=100", nil, header...)).Data
}

func text(it itemJSON) string {
	if len(it.Content) == 0 {
		return ""
	}
	return it.Content[0].Text
}

// nextChange reads the next event of a change feed.
func nextChange(t *testing.T, rd *sse.Reader) wire.ConversationEvent {
	t.Helper()
	ev, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	var ce wire.ConversationEvent
	if err := json.Unmarshal([]byte(ev.Data), &ce); err != nil {
		t.Fatalf("event %q: %v", ev.Data, err)
	}
	return ce
}

// redisNode is a server keeping its logs in Redis r, as a node of a
// cluster does, with o (its Logs set here).
func redisNode(t *testing.T, r *testenv.Redis, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	logs, err := redis.New(ctx, redis.Options{URL: r.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	o.Logs = logs
	return newEnv(t, o)
}
