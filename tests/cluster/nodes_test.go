package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/testenv"
	"github.com/sluice-dev/sluice/sse"
)

// TestACancelThroughNginxStopsTheGenerationOnItsNode starts generations
// on one node and cancels each through nginx, whose round robin sends most
// cancels to the other nodes: every cancel answers "cancelled", and every
// reader, on any node, gets the cancelled event.
func TestACancelThroughNginxStopsTheGenerationOnItsNode(t *testing.T) {
	const gens = 6
	c := newCluster(t, "--demo-ttft", "0s", "--demo-tps", "5")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type gen struct {
		id      string
		readers []*sse.Reader
	}
	var all []gen
	for i := range gens {
		resp, err := do(chatRequest(c.nodes[0].URL, fmt.Sprintf("a long story %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		g := gen{id: resp.Header.Get("Sluice-Stream-ID"), readers: []*sse.Reader{sse.NewReader(resp.Body)}}
		for _, n := range c.nodes { // a reader on every node
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/v1/streams/"+g.id, nil)
			r, err := do(req)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Body.Close() })
			g.readers = append(g.readers, sse.NewReader(r.Body))
		}
		all = append(all, g)
	}
	for _, g := range all {
		resp, err := client.Post(c.nginx.URL+"/v1/streams/"+g.id+"/cancel", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Status string `json:"status"`
		}
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || st.Status != "cancelled" {
			t.Fatalf("cancel of %s through nginx: %s, status %q; want 200 cancelled", g.id, resp.Status, st.Status)
		}
	}
	for _, g := range all {
		for i, rd := range g.readers {
			last := ""
			for {
				ev, err := rd.Next()
				if err != nil {
					t.Fatalf("reader %d of %s: %v before the end", i, g.id, err)
				}
				if e := (testenv.Event{ID: ev.ID, Data: ev.Data}); e.Terminal() {
					last = ev.Data
					break
				}
			}
			if !strings.Contains(last, `"cancelled"`) {
				t.Fatalf("reader %d of %s ended with %q; want the cancelled event", i, g.id, last)
			}
		}
	}
	// Which nodes took the cancels, from nginx's log: round robin must have
	// sent some to a node that does not run the generations. nginx writes a
	// request's line after its answer has gone, so wait for all of them.
	owner := strings.TrimPrefix(c.nodes[0].URL, "http://")
	var cancels []string
	elsewhere := 0
	testenv.Eventually(t, "nginx to log every cancel", func() bool {
		cancels, elsewhere = nil, 0
		for _, s := range c.nginx.servedBy(t) {
			if s.Method == http.MethodPost && strings.HasSuffix(s.Path, "/cancel") {
				cancels = append(cancels, s.Upstream)
				if s.Upstream != owner {
					elsewhere++
				}
			}
		}
		return len(cancels) >= gens
	})
	t.Logf("the generations ran on %s; their cancels went to %v", owner, cancels)
	if len(cancels) != gens || elsewhere == 0 {
		t.Fatalf("nginx logged %d cancels, %d of them on another node than %s: the test proved nothing", len(cancels), elsewhere, owner)
	}
}

// TestKillingTheGeneratingNodeGivesEveryOtherReaderNodeLostInTime kills
// (-9) the node that runs a generation mid-answer: every reader on the
// other nodes, and through nginx, gets one node_lost error event within
// the bound.
func TestKillingTheGeneratingNodeGivesEveryOtherReaderNodeLostInTime(t *testing.T) {
	const bound = 5 * time.Second
	c := newCluster(t, "--demo-ttft", "0s", "--demo-tps", "5")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	owner := c.nodes[0]
	resp, err := do(chatRequest(owner.URL, "a long story"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	id := resp.Header.Get("Sluice-Stream-ID")
	type reader struct {
		where string
		resp  *http.Response
	}
	var readers []reader
	for _, url := range []string{c.nodes[1].URL, c.nodes[2].URL, c.nginx.URL, c.nginx.URL} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/streams/"+id, nil)
		r, err := do(req)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, reader{url, r})
	}
	owner.kill()
	killed := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(readers))
	for _, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A reader that nginx had sent to the killed node is cut off and
			// resumes through nginx, as a client does.
			out := followThrough(ctx, c.nginx.URL, id, r.resp, 2*bound)
			took := time.Since(killed)
			switch {
			case out.err != nil:
				errs <- fmt.Errorf("reader at %s: %v", r.where, out.err)
			case out.what != "error event" || !strings.Contains(out.last, "node_lost"):
				errs <- fmt.Errorf("reader at %s ended with %s %q; want the node_lost event", r.where, out.what, out.last)
			case took > bound:
				errs <- fmt.Errorf("reader at %s got node_lost %v after the kill; the bound is %v", r.where, took, bound)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
