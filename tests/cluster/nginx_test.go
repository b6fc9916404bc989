package cluster_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proxy is an nginx in front of the nodes.
type proxy struct {
	URL  string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	out  *tail
}

// siteConfig returns the nginx configuration that docs/scale-out.md gives
// operators, with its example nodes replaced by nodes and its port by
// port: the test runs what the documentation says.
func siteConfig(t *testing.T, nodes []*node, port int) string {
	t.Helper()
	doc, err := os.ReadFile("../../docs/scale-out.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Deploy behind nginx")
	_, rest, ok2 := strings.Cut(rest, "```nginx\n")
	conf, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("docs/scale-out.md has no nginx block under ## Deploy behind nginx")
	}
	servers := regexp.MustCompile(`(?m)^(\s*server\s+)10\.0\.0\.\d+:8080;`)
	if n := len(servers.FindAllString(conf, -1)); n != len(nodes) {
		t.Fatalf("docs/scale-out.md's upstream has %d servers; the test runs %d nodes", n, len(nodes))
	}
	i := 0
	conf = servers.ReplaceAllStringFunc(conf, func(line string) string {
		addr := strings.TrimPrefix(nodes[i].URL, "http://")
		i++
		return servers.ReplaceAllString(line, "${1}"+addr+";")
	})
	listen := regexp.MustCompile(`(?m)^(\s*listen\s+)80;`)
	if !listen.MatchString(conf) {
		t.Fatal("docs/scale-out.md's server does not listen 80;")
	}
	return listen.ReplaceAllString(conf, "${1}127.0.0.1:"+strconv.Itoa(port)+";")
}

// startNginx starts Debian's nginx as a plain process (no daemon, no
// system files) in a temporary directory, with the site configuration of
// docs/scale-out.md in front of nodes, and returns once it answers. It
// logs which node served each request (see servedBy). It is stopped when
// the test ends.
func startNginx(t *testing.T, nodes []*node) *proxy {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/nginx"); err2 != nil {
			t.Fatal("nginx is not installed: scripts/test.sh installs it (Debian's nginx package)")
		}
	}
	var lastErr error
	for range 5 { // a port taken between choosing and binding it: another
		p, err := tryNginx(t, nodes)
		if err == nil {
			return p
		}
		lastErr = err
	}
	t.Fatalf("starting nginx: %v", lastErr)
	return nil
}

func nginxPath() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return "/usr/sbin/nginx"
}

func tryNginx(t *testing.T, nodes []*node) (*proxy, error) {
	dir := t.TempDir()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sluice.conf"), []byte(siteConfig(t, nodes, port)), 0o644); err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers would otherwise run as nobody, who cannot enter dir
	}
	main := fmt.Sprintf(`daemon off;
%s
worker_processes 2;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    log_format upstream '$upstream_addr $request_method $uri $status';
    access_log %[2]s/access.log upstream;
    include %[2]s/sluice.conf;
}
`, user, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(nginxPath(), "-e", "stderr", "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	p := &proxy{URL: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir, cmd: cmd, done: make(chan struct{}), out: &tail{}}
	cmd.Stderr = p.out
	cmd.Stdout = p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		defer close(p.done)
		cmd.Wait()
	}()
	// nginx says nothing when it is ready: ask it until a node answers
	// through it, or it has exited (its port was taken).
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			return nil, fmt.Errorf("nginx exited:%s", p.out)
		default:
		}
		if resp, err := http.Get(p.URL + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("nginx not answering after 20 s:%s", p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(p.stop)
	return p, nil
}

// stop shuts nginx down at once (SIGTERM: it closes every connection) and
// waits for it.
func (p *proxy) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// served is one request in nginx's log: which node served it.
type served struct {
	Upstream, Method, Path string
	Status                 int
}

// servedBy returns the requests nginx has logged so far. nginx writes a
// request's line once it has ended.
func (p *proxy) servedBy(t *testing.T) []served {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, "access.log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []served
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		st, _ := strconv.Atoi(f[len(f)-1])
		// A request tried on several nodes lists them all, comma-separated:
		// the last one served it.
		out = append(out, served{Upstream: f[len(f)-4], Method: f[len(f)-3], Path: f[len(f)-2], Status: st})
	}
	return out
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
