package api_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/demo"
	"github.com/sluice-dev/sluice/internal/testenv"
)

// TestChaosEveryTranscriptSurvivesDrops runs 300 generations at once; each
// client cuts its connection at random bytes (mid-event too) one or more
// times and resumes with Last-Event-ID. Every joined transcript must equal
// the uninterrupted one, event for event and byte for byte.
func TestChaosEveryTranscriptSurvivesDrops(t *testing.T) {
	const clients = 300
	e := newEnv(t, envOptions{Demo: demo.Options{TokensPerSecond: 400}, MaxGenerations: clients})
	testenv.Chaos(t, e.Client, e.URL, clients, 1)
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
