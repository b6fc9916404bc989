package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestAReaderCutOffFromRedisNeverGetsABareEOF cuts a node's connections to
// Redis again and again (Redis stays up) while its readers wait in Read
// and poll with Poll and Last. A command under way when its connection
// breaks fails with io.EOF inside the client; that must reach a reader as
// EUNAVAILABLE, never as the io.EOF that Read reports at a log's real end
// (a reader would take a lost server for a finished answer). The readers
// that wait go on after each failure and get every event, in order, and
// the ending.
func TestAReaderCutOffFromRedisNeverGetsABareEOF(t *testing.T) {
	const logs, rounds = 10, 30
	r := testenv.StartRedis(t)
	p := testenv.NewTCPProxy(t, r.Addr)
	writer := newStore(t, r.URL, Options{Prefix: "cut"})
	reader := newStore(t, "redis://"+p.Addr+"/0", Options{Prefix: "cut"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var bare atomic.Int64
	var unavailableSeen atomic.Int64
	check := func(what string, err error) bool {
		t.Helper()
		switch {
		case err == nil:
			return true
		case errors.Is(err, io.EOF):
			bare.Add(1)
			t.Errorf("%s: an open log reported io.EOF: %v", what, err)
			return false
		case sluice.ErrorCode(err) == sluice.EUNAVAILABLE:
			unavailableSeen.Add(1)
			return true
		}
		t.Errorf("%s: %v; want events, EUNAVAILABLE or the end", what, err)
		return false
	}
	var (
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		writers []sluice.Log
		want    = make([][]string, logs)
		got     = make([][][]string, logs)
	)
	for i := range logs {
		l, err := writer.Create(ctx, fmt.Sprintf("gen/cut%d", i), sluice.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, l)
		h, err := reader.Open(ctx, l.Name(), false, sluice.LogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { // a poller, whose commands the cuts catch under way
			buf := make([]sluice.Event, 0, 4)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := h.Poll(ctx, "", buf)
				check("Poll", err)
				_, end, err := h.Last(ctx)
				if check("Last", err) && err == nil && end != sluice.EndNone {
					return
				}
			}
		})
		got[i] = make([][]string, 3)
		for j := range got[i] {
			wg.Go(func() { // a follower
				after := ""
				buf := make([]sluice.Event, 0, 8)
				for ctx.Err() == nil {
					evs, err := h.Read(ctx, after, buf)
					for _, ev := range evs {
						got[i][j] = append(got[i][j], ev.ID)
						after = ev.ID
					}
					if len(evs) > 0 && evs[len(evs)-1].End != sluice.EndNone {
						return
					}
					if !check("Read", err) {
						return
					}
				}
			})
		}
	}
	cuts := 0
	for round := range rounds {
		for i, l := range writers {
			id, err := l.Append(ctx, sluice.Event{Data: fmt.Appendf(nil, "token %d", round)})
			if err != nil {
				t.Fatal(err)
			}
			want[i] = append(want[i], id)
		}
		if round%3 == 1 {
			cuts += p.CutAll()
		}
	}
	for i, l := range writers {
		id, err := l.Append(ctx, sluice.Event{Data: []byte("[DONE]"), End: sluice.EndDone})
		if err != nil {
			t.Fatal(err)
		}
		want[i] = append(want[i], id)
	}
	close(stop)
	wg.Wait()
	if cuts == 0 {
		t.Fatal("no connection was cut: the test proved nothing")
	}
	for i := range got {
		for j, ids := range got[i] {
			if !slices.Equal(ids, want[i]) {
				t.Fatalf("follower %d of log %d got %d events %v; want all %d in order", j, i, len(ids), ids, len(want[i]))
			}
		}
	}
	t.Logf("%d connections cut; readers got EUNAVAILABLE %d times and a bare EOF %d times", cuts, unavailableSeen.Load(), bare.Load())
}
