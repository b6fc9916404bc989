package prom

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// names returns the name of every metric of Sluice's own that a server
// with every part wired (Redis, the memory store, /ws, conversations)
// serves.
func names(t *testing.T) []string {
	t.Helper()
	m := New(Options{Models: []string{"demo"}})
	m.Redis()
	m.Conversations()
	m.WatchStore(func() StoreFigures { return StoreFigures{} })
	m.WatchWebSockets(func() int64 { return 0 })
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range m.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	var out []string
	for d := range ch {
		if mm := fq.FindStringSubmatch(d.String()); mm != nil {
			out = append(out, mm[1])
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestEveryMetricIsDocumentedAndTheDashboardUsesOnlyThem holds
// docs/operations.md's table of metrics to what the server serves, both
// ways, and the Grafana dashboard to metrics that exist, in PromQL that
// Prometheus parses (promtool check rules).
func TestEveryMetricIsDocumentedAndTheDashboardUsesOnlyThem(t *testing.T) {
	served := names(t)
	if len(served) < 25 {
		t.Fatalf("only %d metrics described: %v", len(served), served)
	}
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(sluice_[a-z_]+)` \\|").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	for _, n := range served {
		if !slices.Contains(documented, n) {
			t.Errorf("%s is served but not in docs/operations.md's table", n)
		}
	}
	for _, n := range documented {
		if !slices.Contains(served, n) {
			t.Errorf("docs/operations.md documents %s, which is not served", n)
		}
	}

	b, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range regexp.MustCompile(`sluice_[a-z_]+`).FindAllString(tg.Expr, -1) {
				base := n
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if strings.HasSuffix(n, "_seconds"+suf) {
						base = strings.TrimSuffix(n, suf)
					}
				}
				used[base] = true
				if !slices.Contains(served, base) {
					t.Errorf("panel %q queries %s, which is not served", p.Title, n)
				}
			}
			// Grafana's variables, as Grafana would fill them in.
			expr := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*", "$job", ".*").Replace(tg.Expr)
			js, _ := json.Marshal(expr)
			rules.WriteString("      - record: dashboard:expr\n        expr: " + string(js) + "\n")
		}
	}
	for _, n := range served {
		if !used[n] {
			t.Errorf("the dashboard draws nothing of %s", n)
		}
	}
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed, and this test checks the dashboard's queries with it: run scripts/test.sh, " +
			"which installs it, or apt-get install prometheus (Debian's package ships promtool)")
	}
	file := t.TempDir() + "/dashboard.rules.yml"
	if err := os.WriteFile(file, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(path, "check", "rules", file).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
