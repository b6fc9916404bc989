package hub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/hub"
	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/redis"
	"github.com/sluice-dev/sluice/sse"
)

// TestReadersOfASharedLogGetEveryEventOnceWhoeverAppends follows logs of
// two Redis stores (two nodes) through a hub on the first. The first
// node puts its own appends (Append, a deferred append of a quiet log,
// which goes at once, and coalesced rounds) into its window as they
// return; the second node's come by their messages. Whichever way each
// event comes, with few readers and many, every reader gets every event
// once, in order, and the end (appended by the second node).
func TestReadersOfASharedLogGetEveryEventOnceWhoeverAppends(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var nodes [2]*redis.Store
	for i := range nodes {
		s, err := redis.New(ctx, redis.Options{URL: r.URL, Prefix: "shared"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes[i] = s
	}
	h := hub.New(hub.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		l, err := nodes[0].Open(req.Context(), strings.TrimPrefix(req.URL.Path, "/"), false, sluice.LogOptions{})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		sse.SetHeaders(w.Header())
		if err := h.Attach(w, l, "", hub.AttachOptions{}); err != nil {
			http.Error(w, err.Error(), 503)
		}
	}))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := h.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})

	for _, readers := range []int{2, 12} {
		t.Run(fmt.Sprintf("%d readers", readers), func(t *testing.T) {
			name := fmt.Sprintf("gen/shared%d", readers)
			local, err := nodes[0].Create(ctx, name, sluice.LogOptions{})
			if err != nil {
				t.Fatal(err)
			}
			remote, err := nodes[1].Open(ctx, name, false, sluice.LogOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := make([][]sse.Event, readers)
			var wg sync.WaitGroup
			for i := range readers {
				resp, err := http.Get(srv.URL + "/" + name)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { resp.Body.Close() })
				rd := sse.NewReader(resp.Body)
				wg.Go(func() {
					for {
						ev, err := rd.Next()
						if err != nil {
							return
						}
						got[i] = append(got[i], ev)
					}
				})
			}
			var want []string
			for i := range 60 {
				data := fmt.Sprintf("event %d", i)
				var err error
				switch i % 4 {
				case 0: // this node, at once: delivered by this goroutine
					_, err = local.Append(ctx, sluice.Event{Data: []byte(data)})
				case 1, 2: // this node, deferred: in a round (it appended within the quiet spell)
					err = local.(*redis.Log).Defer(ctx, sluice.Event{Data: []byte(data)})
				case 3: // the other node
					if err = local.(*redis.Log).Flush(ctx); err == nil {
						_, err = remote.Append(ctx, sluice.Event{Data: []byte(data)})
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, data)
			}
			// Ended by the other node: no append of this one's follows
			// to bring it along.
			if err := local.(*redis.Log).Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Append(ctx, sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone}); err != nil {
				t.Fatal(err)
			}
			want = append(want, "[DONE]")
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				t.Fatal("the readers did not all get to the end")
			}
			for i, evs := range got {
				var datas []string
				for _, ev := range evs {
					datas = append(datas, ev.Data)
				}
				if fmt.Sprint(datas) != fmt.Sprint(want) {
					t.Fatalf("reader %d got %d events %q; want every one of %d once, in order", i, len(datas), datas, len(want))
				}
			}
		})
	}
}

// TestReadersAttachingAsTheirLogsAreWrittenGetEachEventOnce attaches one
// reader to each of many Redis logs whose writers are already deferring
// events, some at once, some in coalesced rounds, while the hub reads the
// newest event to start the feed from (a round trip): each reader gets
// every event once, in order. (It caught a delivery that began before the
// feed's head was set handing readers events they then got again, when
// these logs notified the hub of their node's appends.)
func TestReadersAttachingAsTheirLogsAreWrittenGetEachEventOnce(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := redis.New(ctx, redis.Options{URL: r.URL, Prefix: "attaching"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	h := hub.New(hub.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	logs := sync.Map{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		v, _ := logs.Load(strings.TrimPrefix(req.URL.Path, "/"))
		sse.SetHeaders(w.Header())
		if err := h.Attach(w, v.(sluice.Log), "", hub.AttachOptions{}); err != nil {
			http.Error(w, err.Error(), 503)
		}
	}))
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		h.Shutdown(sctx)
		srv.Close()
	})
	const n, events = 40, 100
	var wg sync.WaitGroup
	for i := range n {
		name := fmt.Sprintf("gen/attaching%d", i)
		l, err := s.Create(ctx, name, sluice.LogOptions{Lost: []byte("lost")})
		if err != nil {
			t.Fatal(err)
		}
		logs.Store(name, l)
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/" + name)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			rd := sse.NewReader(resp.Body)
			go func() {
				for k := range events {
					if rand.IntN(3) == 0 {
						time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
					}
					if err := l.(*redis.Log).Defer(ctx, sluice.Event{Data: fmt.Appendf(nil, "e%d", k)}); err != nil {
						t.Error(err)
						return
					}
				}
				l.Append(ctx, sluice.Event{Data: []byte("end"), End: sluice.EndDone})
			}()
			var got []string
			for {
				ev, err := rd.Next()
				if err != nil {
					break
				}
				got = append(got, ev.Data)
			}
			if len(got) != events+1 {
				t.Errorf("%s: got %d events, want %d: %v", name, len(got), events+1, got)
				return
			}
			for k := range events {
				if got[k] != fmt.Sprintf("e%d", k) {
					t.Errorf("%s: event %d is %q", name, k, got[k])
					return
				}
			}
		})
	}
	wg.Wait()
}
