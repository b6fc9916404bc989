package api_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/sse"
)

// TestChaosEveryTranscriptSurvivesDrops runs 300 generations at once; each
// client cuts its connection at random bytes (mid-event too) one or more
// times and resumes with Last-Event-ID. Every joined transcript must equal
// the uninterrupted one, event for event and byte for byte.
func TestChaosEveryTranscriptSurvivesDrops(t *testing.T) {
	const clients = 300
	e := newEnv(t, envOptions{Demo: demo.Options{TokensPerSecond: 400}, MaxGenerations: clients})
	rng := rand.New(rand.NewPCG(1, 2))
	seeds := make([]uint64, clients)
	for i := range seeds {
		seeds[i] = rng.Uint64()
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	var drops, events atomic.Int64
	start := time.Now()
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, n, err := chaosClient(e, i, rand.New(rand.NewPCG(seeds[i], 7)))
			drops.Add(int64(d))
			events.Add(int64(n))
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d clients, %d drops and resumes, %d events compared, in %v", clients, drops.Load(), events.Load(), time.Since(start).Round(time.Millisecond))
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d clients got a broken transcript", n, clients)
	}
}

type sseEvent struct{ id, data string }

// readCut reads events from resp until the stream ends or cut bytes have
// been read; an event cut in half is discarded, as EventSource does.
func readCut(resp *http.Response, cut int64) (evs []sseEvent, ended bool, err error) {
	defer resp.Body.Close()
	rd := sse.NewReader(io.LimitReader(resp.Body, cut))
	for {
		ev, err := rd.Next()
		if err != nil {
			if err == io.EOF {
				return evs, false, nil
			}
			return evs, false, err
		}
		evs = append(evs, sseEvent{ev.ID, ev.Data})
		if ev.Data == "[DONE]" || strings.HasPrefix(ev.Data, `{"error":`) {
			return evs, true, nil
		}
	}
}

func chaosClient(e *env, i int, rng *rand.Rand) (drops, events int, err error) {
	do := func(req *http.Request) (*http.Response, error) {
		resp, err := e.Client.Do(req)
		if err == nil && resp.StatusCode != 200 {
			resp.Body.Close()
			return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
		}
		return resp, err
	}
	body := fmt.Sprintf(`{"model":"demo","stream":true,"messages":[{"role":"user","content":"chaos %d"}]}`, i%7)
	req, _ := http.NewRequest("POST", e.URL+"/v1/chat/completions", strings.NewReader(body))
	resp, err := do(req)
	if err != nil {
		return 0, 0, err
	}
	id := resp.Header.Get("Sluice-Stream-ID")
	var got []sseEvent
	for {
		cut := int64(1 << 40)
		if drops == 0 || rng.IntN(3) > 0 { // always once, often more
			cut = int64(rng.IntN(20000))
		}
		evs, ended, err := readCut(resp, cut)
		got = append(got, evs...)
		if err != nil {
			return drops, len(got), err
		}
		if ended {
			break
		}
		drops++
		if drops > 100 {
			return drops, len(got), fmt.Errorf("no end after 100 resumes")
		}
		req, _ := http.NewRequest("GET", e.URL+"/v1/streams/"+id, nil)
		if len(got) > 0 {
			req.Header.Set("Last-Event-ID", got[len(got)-1].id)
		}
		if resp, err = do(req); err != nil {
			return drops, len(got), err
		}
	}
	req, _ = http.NewRequest("GET", e.URL+"/v1/streams/"+id, nil)
	if resp, err = do(req); err != nil {
		return drops, len(got), err
	}
	whole, ended, err := readCut(resp, 1<<40)
	if err != nil || !ended {
		return drops, len(got), fmt.Errorf("uninterrupted read: ended %v, %v", ended, err)
	}
	if len(got) != len(whole) {
		return drops, len(got), fmt.Errorf("after %d drops: %d events, uninterrupted %d", drops, len(got), len(whole))
	}
	for k := range whole {
		if got[k] != whole[k] {
			return drops, len(got), fmt.Errorf("after %d drops: event %d is %+v, uninterrupted %+v", drops, k, got[k], whole[k])
		}
	}
	if whole[len(whole)-1].data != "[DONE]" {
		return drops, len(got), fmt.Errorf("the stream ended with %q", whole[len(whole)-1].data)
	}
	return drops, len(got), nil
}

// TestSlowReadersDoNotHoldUpOthers puts 20 readers that take one byte per
// 100 ms beside 200 normal ones on a topic carrying far more than socket
// buffers hold. The normal ones get every event in time, the slow ones are
// dropped, and the server's heap stays bounded.
func TestSlowReadersDoNotHoldUpOthers(t *testing.T) {
	if testing.Short() {
		t.Skip("moves about 200 MB over loopback")
	}
	e := newEnv(t, envOptions{API: api.Config{WriteTimeout: time.Second}, Admit: admit.Config{TopicMaxLen: 1000}})
	const normal, slow, events, size = 200, 20, 400, 2048
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	body := fmt.Sprintf(`{"data":%q}`, payload)

	var slowDone sync.WaitGroup
	t.Cleanup(slowDone.Wait)
	for range slow {
		conn := slowConn(t, e, "/v1/topics/firehose/events")
		slowDone.Add(1)
		go func() {
			defer slowDone.Done()
			b := make([]byte, 1)
			for {
				if _, err := conn.Read(b); err != nil {
					return // closed at the end of the test
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	var wg sync.WaitGroup
	counts := make([]int, normal)
	for i := range normal {
		resp, rd := subscribe(t, e, "/v1/topics/firehose/events")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			for counts[i] < events {
				ev, err := rd.Next()
				if err != nil || len(ev.Data) != size {
					return
				}
				counts[i]++
			}
		}()
	}
	var peakHeap uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
		}
	}()

	start := time.Now()
	for range events {
		resp := e.Post(t, "/v1/topics/firehose/events", body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("publish: %s", resp.Status)
		}
		resp.Body.Close()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("normal readers were held up for a minute")
	}
	elapsed := time.Since(start)
	for i, n := range counts {
		if n != events {
			t.Fatalf("normal reader %d got %d of %d events", i, n, events)
		}
	}
	// The slow ones are dropped by the server (they may take minutes to
	// read what their sockets still hold, so ask the server).
	waitForStreams(t, e, 0) // the normal readers have closed theirs
	close(stopSampling)
	<-sampled
	const heapBound = 128 << 20
	t.Logf("normal readers done in %v; peak heap in use %.1f MB (bound %d MB)", elapsed.Round(time.Millisecond), float64(peakHeap)/(1<<20), heapBound>>20)
	if peakHeap > heapBound {
		t.Fatalf("peak heap %d MB over the bound", peakHeap>>20)
	}
}

// slowConn opens a subscription on a socket with a small receive buffer, so
// that a client that hardly reads soon stops taking data (on loopback the
// kernel would otherwise buffer megabytes for it).
func slowConn(t *testing.T, e *env, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: sluice\r\n\r\n", path)
	// Wait for the head, so the subscription is live before publishing.
	b := make([]byte, 1)
	if _, err := conn.Read(b); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitForStreams waits until the server holds n streams.
func waitForStreams(t *testing.T, e *env, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := decode[api.Stats](t, e.Get(t, "/debug/stats"))
		if st.Streams == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server holds %d streams, want %d", st.Streams, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
