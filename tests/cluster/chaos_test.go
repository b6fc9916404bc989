package cluster_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/testenv"
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
	drops := testenv.Chaos(t, client, c.nginx.URL, clients, 3)
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
		return total >= int(drops)+clients
	})
	t.Logf("resumes served by node: %v", resumes)
	for _, nd := range c.nodes {
		if resumes[strings.TrimPrefix(nd.URL, "http://")] == 0 {
			t.Errorf("node %s served no resume: %v", nd.URL, resumes)
		}
	}
}
