package redis

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/internal/testenv"
)

func TestNewFailsClearlyWhenRedisIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, Options{URL: "redis://" + addr + "/0"})
	if err == nil {
		s.Close()
		t.Fatal("New succeeded with nothing listening")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Fatalf("error %q does not name %s", err, addr)
	}
	testenv.AwaitGoroutinesGone(t, "rueidis.(*call).DelayDo")
}

func TestAnEventOverTheBoundIsRefused(t *testing.T) {
	s := newStore(t, testenv.StartRedis(t).URL, Options{MaxEventBytes: 1000})
	ctx := context.Background()
	l, err := s.Create(ctx, "gen/big", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := l.Append(ctx, sluice.Event{Name: "n", Data: make([]byte, 999)})
	if err != nil {
		t.Fatalf("an event of exactly the bound: %v", err)
	}
	_, err = l.Append(ctx, sluice.Event{Name: "n", Data: make([]byte, 1000)})
	if sluice.ErrorCode(err) != sluice.ETOOLARGE {
		t.Fatalf("an event one byte over the bound: %v, want ETOOLARGE", err)
	}
	if last, _, _ := l.Last(ctx); last != id {
		t.Fatalf("the refused event was stored: Last = %q, want %q", last, id)
	}
}

func TestAnIDThisIncarnationHasNotIssuedIsInvalid(t *testing.T) {
	s := newStore(t, testenv.StartRedis(t).URL, Options{})
	ctx := context.Background()
	l, _ := s.Create(ctx, "gen/ids", sluice.LogOptions{})
	var last string
	for range 3 {
		last, _ = l.Append(ctx, sluice.Event{Data: []byte("x")})
	}
	epoch := strings.TrimPrefix(last, "3-")
	if _, err := l.Poll(ctx, "3-"+epoch, make([]sluice.Event, 0, 1)); err != nil {
		t.Fatalf("after the newest event: %v", err)
	}
	for _, id := range []string{"4-" + epoch, "18446744073709551615-" + epoch, "03-" + epoch} {
		if _, err := l.Poll(ctx, id, make([]sluice.Event, 0, 1)); sluice.ErrorCode(err) != sluice.EINVALID {
			t.Fatalf("after %q: %v, want EINVALID", id, err)
		}
	}
}

func TestNamesThatWouldBreakAHashTagStayOnOneShard(t *testing.T) {
	c := testenv.StartRedisCluster(t)
	s := newStore(t, "redis://"+c.Addrs[0], Options{})
	ctx := context.Background()
	for _, name := range []string{"", "}", "a}b", "{x}", "topic/{open", "gen/é"} {
		for _, ring := range []bool{false, true} {
			n := name
			if ring {
				n += "/ring"
			}
			l, err := s.Create(ctx, n, sluice.LogOptions{Ring: ring, MaxLen: 3})
			if err != nil {
				t.Fatalf("create %q: %v", n, err)
			}
			var ids []string
			for range 3 {
				id, err := l.Append(ctx, sluice.Event{Data: []byte(n)})
				if err != nil {
					t.Fatalf("append to %q: %v", n, err)
				}
				ids = append(ids, id)
			}
			evs, err := l.Poll(ctx, ids[1], make([]sluice.Event, 0, 4))
			if err != nil || len(evs) != 1 || evs[0].ID != ids[2] || string(evs[0].Data) != n {
				t.Fatalf("read %q: %q, %v", n, evs, err)
			}
		}
	}
	// Names that differ only where the encoding of others might make them alike.
	for _, name := range []string{"=7d", "h{=7d}"} {
		if _, err := s.Create(ctx, name, sluice.LogOptions{}); err != nil {
			t.Fatalf("create %q beside \"}\": %v", name, err)
		}
	}
}

func TestRedisOutOfMemoryIsUnavailableNotABug(t *testing.T) {
	s := newStore(t, testenv.StartRedis(t).URL, Options{})
	ctx := context.Background()
	l, err := s.Create(ctx, "gen/oom", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.client.Do(ctx, s.client.B().ConfigSet().ParameterValue().ParameterValue("maxmemory", "1").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	_, err = l.Append(ctx, sluice.Event{Data: []byte("x")})
	if sluice.ErrorCode(err) != sluice.EUNAVAILABLE || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("append to a Redis out of memory: %v; want EUNAVAILABLE saying OOM", err)
	}
}

func TestEventsOfEveryShapeRoundTrip(t *testing.T) {
	r := testenv.StartRedis(t)
	s := newStore(t, r.URL, Options{Prefix: "shapes"})
	ctx := context.Background()
	base := []byte(`{"object":"chunk","choices":[{"delta":{"content":"hello"}}],"x":1}`)
	long := bytes.Repeat([]byte("0123456789"), 500) // no base: over 4 KB
	evs := []sluice.Event{
		{Data: []byte("short")}, // under 24 bytes: not a base
		{Data: base, Name: "first"},
		{Data: base}, // all of it shared
		{Data: []byte(`{"object":"chunk","choices":[{"delta":{"content":"a much longer token than hello"}}],"x":1}`)},
		{Data: []byte(`{"object":"chunk","choices":[{"delta":{"content":""}}],"x":1}`)},
		{Data: base[:30]}, // a start only
		{Data: base[len(base)-30:]},
		{Data: append(append([]byte{}, base...), base...)},
		{Data: []byte{}},
		{Data: []byte{0, 1, 2, 255, 0, '{', '}', ':', '\n'}, Name: "bin:ary\n"},
		{Data: long},
		{Data: []byte(`{"object":"chunk" but not JSON at all, sharing a start`), End: sluice.EndDone},
	}
	l, err := s.Create(ctx, "gen/shapes", sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A reader waiting from the start gets them through the subscription;
	// one on another node reading afterwards, from the stream.
	live := make(chan []sluice.Event, 1)
	go func() {
		var got []sluice.Event
		after := ""
		for {
			evs, err := l.Read(ctx, after, make([]sluice.Event, 0, 2))
			got = append(got, evs...)
			if len(evs) > 0 {
				after = evs[len(evs)-1].ID
			}
			if err != nil {
				live <- got
				return
			}
		}
	}()
	for _, ev := range evs {
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	other, err := newStore(t, r.URL, Options{Prefix: "shapes"}).Open(ctx, "gen/shapes", false, sluice.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := other.Poll(ctx, "", make([]sluice.Event, 0, 20)) // another node: no subscription
	if err != nil {
		t.Fatal(err)
	}
	for what, got := range map[string][]sluice.Event{"from the stream": stored, "through the subscription": <-live} {
		if len(got) != len(evs) {
			t.Fatalf("%s: %d events, want %d", what, len(got), len(evs))
		}
		for i, ev := range evs {
			if g := got[i]; !bytes.Equal(g.Data, ev.Data) || g.Name != ev.Name || g.End != ev.End {
				t.Errorf("%s: event %d = %q %q %v, want %q %q %v", what, i, g.Name, g.Data, g.End, ev.Name, ev.Data, ev.End)
			}
		}
	}
}

func TestABadURLIsRefusedWithoutShowingIt(t *testing.T) {
	for _, url := range []string{"redis://user:s3cret@[::1", "http://user:s3cret@localhost/", ""} {
		s, err := New(context.Background(), Options{URL: url})
		if err == nil {
			s.Close()
			t.Fatalf("New(%q) succeeded", url)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("New(%q): %q shows the password", url, err)
		}
	}
}
