package cluster_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/sse"
)

// subscribeTo opens a subscription to topic at url (a node, or nginx),
// ended when ctx is.
func subscribeTo(t *testing.T, ctx context.Context, url, topic string) *sse.Reader {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/topics/"+topic+"/events", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("subscribe at %s: %s", url, resp.Status)
	}
	return sse.NewReader(resp.Body)
}

func publishTo(t *testing.T, url, topic, data string) {
	t.Helper()
	resp, err := client.Post(url+"/v1/topics/"+topic+"/events", "application/json", strings.NewReader(fmt.Sprintf(`{"data":%q}`, data)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish at %s: %s", url, resp.Status)
	}
}

// TestATopicPublishedOnOneNodeReachesReadersOnAllThree: readers on each
// node, and readers through nginx, get what is published on one node and
// what is published through nginx, in one order with the same IDs.
func TestATopicPublishedOnOneNodeReachesReadersOnAllThree(t *testing.T) {
	c := newCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var readers []*sse.Reader
	var where []string
	for _, n := range c.nodes {
		readers = append(readers, subscribeTo(t, ctx, n.URL, "news"))
		where = append(where, n.URL)
	}
	for range 3 {
		readers = append(readers, subscribeTo(t, ctx, c.nginx.URL, "news"))
		where = append(where, "nginx")
	}
	publishTo(t, c.nodes[1].URL, "news", "from node 1")
	publishTo(t, c.nginx.URL, "news", "through nginx")
	publishTo(t, c.nodes[2].URL, "news", "from node 2")
	var first []sse.Event
	for i, rd := range readers {
		var got []sse.Event
		for len(got) < 3 {
			ev, err := rd.Next()
			if err != nil {
				t.Fatalf("reader %d (%s) after %d events: %v", i, where[i], len(got), err)
			}
			got = append(got, ev)
		}
		if i == 0 {
			first = got
			if got[0].Data != "from node 1" || got[1].Data != "through nginx" || got[2].Data != "from node 2" {
				t.Fatalf("reader on %s got %+v", where[i], got)
			}
			continue
		}
		for k := range got {
			if got[k].ID != first[k].ID || got[k].Data != first[k].Data {
				t.Fatalf("reader %d (%s), event %d: %+v; the reader on %s got %+v", i, where[i], k, got[k], where[0], first[k])
			}
		}
	}
}
