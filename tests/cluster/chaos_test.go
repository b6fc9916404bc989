package cluster_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// cluster is three nodes on one Redis behind nginx.
type cluster struct {
	redis *testenv.Redis
	nodes []*node
	nginx *proxy
}

// newCluster starts Redis, three nodes on it with args (and nginx trusted
// as their proxy), and nginx in front of them.
func newCluster(t *testing.T, args ...string) *cluster {
	t.Helper()
	c := &cluster{redis: testenv.StartRedis(t)}
	for range 3 {
		c.nodes = append(c.nodes, startNode(t, append([]string{"--redis-url", c.redis.URL, "--trusted-proxies", "127.0.0.1"}, args...)...))
	}
	c.nginx = startNginx(t, c.nodes)
	return c
}

type event struct{ id, data string }

func (e event) terminal() bool { return e.data == "[DONE]" || strings.HasPrefix(e.data, `{"error":`) }

// readCut reads events from resp until the stream ends or cut bytes have
// come; an event cut in half is dropped, as EventSource drops it.
func readCut(resp *http.Response, cut int64) (evs []event, ended bool, err error) {
	defer resp.Body.Close()
	rd := sse.NewReader(io.LimitReader(resp.Body, cut))
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return evs, false, nil
		}
		if err != nil {
			return evs, false, err
		}
		evs = append(evs, event{ev.ID, ev.Data})
		if evs[len(evs)-1].terminal() {
			return evs, true, nil
		}
	}
}

// do sends req and wants 200.
func do(req *http.Request) (*http.Response, error) {
	resp, err := client.Do(req)
	if err == nil && resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return resp, err
}

func chatRequest(url, prompt string) *http.Request {
	body := fmt.Sprintf(`{"model":"demo","stream":true,"messages":[{"role":"user","content":%q}]}`, prompt)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func resumeRequest(url, id, last string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/streams/"+id, nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	return req
}

// TestChaosBehindNginxEveryTranscriptSurvivesDropsOnAnyNode runs 300
// generations at once through nginx; each client cuts its connection at
// random bytes (mid-event too) one or more times and resumes with
// Last-Event-ID, through nginx, so on whichever node round robin gives
// it. Every joined transcript must equal the uninterrupted one event for
// event, byte for byte, and every node must have served resumes.
func TestChaosBehindNginxEveryTranscriptSurvivesDropsOnAnyNode(t *testing.T) {
	const clients = 300
	c := newCluster(t, "--demo-ttft", "0s", "--demo-tps", "400", "--max-generations", "1000")
	rng := rand.New(rand.NewPCG(3, 4))
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
			d, n, err := chaosClient(c.nginx.URL, i, rand.New(rand.NewPCG(seeds[i], 9)))
			drops.Add(int64(d))
			events.Add(int64(n))
			if err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	t.Logf("%d clients, %d drops and resumes, %d events compared, in %v", clients, drops.Load(), events.Load(), time.Since(start).Round(time.Millisecond))
	n := 0
	for err := range errs {
		if n++; n <= 10 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of %d clients got a broken transcript", n, clients)
	}
	// Which node served what, from nginx's log. A dropped request is logged
	// when nginx has seen it end, so wait for them all.
	var resumes map[string]int
	testenv.Eventually(t, "nginx to log every request", func() bool {
		resumes = map[string]int{}
		total := 0
		for _, s := range c.nginx.servedBy(t) {
			if s.Method == http.MethodGet && strings.HasPrefix(s.Path, "/v1/streams/") {
				resumes[s.Upstream]++
				total++
			}
		}
		return total >= int(drops.Load())+clients
	})
	t.Logf("resumes served by node: %v", resumes)
	for _, nd := range c.nodes {
		if resumes[strings.TrimPrefix(nd.URL, "http://")] == 0 {
			t.Errorf("node %s served no resume: %v", nd.URL, resumes)
		}
	}
}

func chaosClient(url string, i int, rng *rand.Rand) (drops, events int, err error) {
	resp, err := do(chatRequest(url, fmt.Sprintf("chaos %d", i%7)))
	if err != nil {
		return 0, 0, err
	}
	id := resp.Header.Get("Sluice-Stream-ID")
	var got []event
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
		if drops++; drops > 100 {
			return drops, len(got), fmt.Errorf("no end after 100 resumes")
		}
		last := ""
		if len(got) > 0 {
			last = got[len(got)-1].id
		}
		if resp, err = do(resumeRequest(url, id, last)); err != nil {
			return drops, len(got), err
		}
	}
	resp, err = do(resumeRequest(url, id, ""))
	if err != nil {
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
