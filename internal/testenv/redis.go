package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is a redis-server started for one test: on a free loopback port,
// in a temporary directory, with persistence off, and stopped when the test
// ends.
type Redis struct {
	Addr string // host:port
	URL  string // redis://host:port/0, as --redis-url takes it
	proc *redisProc
}

// RedisCluster is a Redis Cluster of three masters and no replicas, started
// for one test and stopped when it ends. Any of Addrs serves as a seed.
type RedisCluster struct {
	Addrs []string
	procs []*redisProc
}

// needRedis fails the test when the Redis binaries are missing: a test
// that needs a real Redis must not pass by skipping it.
func needRedis(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: scripts/test.sh installs it (Debian's redis-server package)", bin)
		}
	}
}

// StartRedis starts a redis-server for t.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	needRedis(t)
	p := startRedisProc(t)
	return &Redis{Addr: p.addr, URL: "redis://" + p.addr + "/0", proc: p}
}

// Stop stops the server at once (SIGKILL), as a crash would; later
// commands to it fail. The test's cleanup still waits for the process.
func (r *Redis) Stop() { r.proc.kill() }

// Restart stops the server at once, if it runs, and starts a new one on
// the same port, empty (persistence is off), as a Redis that crashed and
// came back would be; it returns once the new one accepts connections.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.proc.kill()
	_, port, _ := net.SplitHostPort(r.Addr)
	var lastErr error
	// The port may take a moment to be free to bind again.
	for range 50 {
		p, err := tryRedisProc(r.proc.dir, port, r.proc.bus, nil)
		if err == nil {
			t.Cleanup(p.stop)
			r.proc = p
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("restarting redis-server on %s: %v", r.Addr, lastErr)
}

// StartRedisCluster starts three cluster-enabled redis-servers, joins them
// with `redis-cli --cluster create` and waits until each reports
// cluster_state:ok.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	needRedis(t)
	c := &RedisCluster{}
	for range 3 {
		p := startRedisProc(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
		c.procs = append(c.procs, p)
		c.Addrs = append(c.Addrs, p.addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// The nodes learn of each other over the cluster bus after create
	// returns, and nothing tells when: ask each until it says ok.
	for _, addr := range c.Addrs {
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, err := redisCLI(addr, "cluster", "info")
			if err == nil && strings.Contains(out, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster node %s not ok after 20s: %v\n%s", addr, err, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// redisCLI runs one command with redis-cli against addr.
func redisCLI(addr string, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return string(out), err
}

// redisProc is one running redis-server.
type redisProc struct {
	addr string
	dir  string
	bus  string // the cluster bus port
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and its output is drained
	out  *tailBuffer

	killOnce sync.Once
}

// startRedisProc starts redis-server with extra arguments on free ports,
// and returns once it accepts connections. A port taken between choosing
// and binding it (other tests run on this machine) is retried with another.
func startRedisProc(t testing.TB, extra ...string) *redisProc {
	t.Helper()
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		bus, err := freePort() // the cluster bus; unused without --cluster-enabled
		if err != nil {
			t.Fatal(err)
		}
		p, err := tryRedisProc(t.TempDir(), strconv.Itoa(port), strconv.Itoa(bus), extra)
		if err == nil {
			t.Cleanup(p.stop)
			return p
		}
		lastErr = err
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

func tryRedisProc(dir, port, bus string, extra []string) (*redisProc, error) {
	args := []string{
		"--port", port, "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no",
		"--protected-mode", "no", "--cluster-port", bus,
	}
	cmd := exec.Command("redis-server", append(args, extra...)...)
	cmd.Dir = dir
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &redisProc{addr: net.JoinHostPort("127.0.0.1", port), dir: dir, bus: bus, cmd: cmd, done: make(chan struct{}), out: &tailBuffer{}}
	ready := make(chan struct{})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			p.out.add(sc.Text())
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		cmd.Wait()
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("redis-server on port %s exited: %s", port, p.out)
	case <-time.After(20 * time.Second):
		p.stop()
		return nil, fmt.Errorf("redis-server on port %s not ready after 20s: %s", port, p.out)
	}
}

// kill stops the process at once.
func (p *redisProc) kill() {
	p.killOnce.Do(func() { p.cmd.Process.Signal(syscall.SIGKILL) })
	<-p.done
}

// stop asks the process to stop (it saves nothing) and waits for it, then
// kills it if it has not stopped within 5 s.
func (p *redisProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
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

// tailBuffer keeps the last lines a process printed, for error messages.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *tailBuffer) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lines = append(b.lines, line)
	if len(b.lines) > 20 {
		b.lines = b.lines[1:]
	}
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var buf bytes.Buffer
	for _, l := range b.lines {
		buf.WriteString("\n\t" + l)
	}
	return buf.String()
}

// AwaitGoroutinesGone waits until no goroutine's stack holds fn, failing t
// after 10 s. A Redis client that fails to connect leaves a goroutine
// asleep for a moment before it gives up (rueidis's delayed cluster
// refresh, "rueidis.(*call).DelayDo"): a test that makes one fail waits for
// it, so that the leak check at the end does not catch it in passing.
func AwaitGoroutinesGone(t *testing.T, fn string) {
	t.Helper()
	Eventually(t, "goroutines in "+fn+" to end", func() bool {
		buf := make([]byte, 1<<20)
		return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
	})
}

// Calls returns how many commands r has run (INFO's
// total_commands_processed), through redis-cli.
func (r *Redis) Calls(t testing.TB) int {
	t.Helper()
	out, err := redisCLI(r.Addr, "info", "stats")
	m := regexp.MustCompile(`total_commands_processed:(\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("redis-cli info: %v: %s", err, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// LaterID returns the ID by events after id, an event ID of the
// "<offset>-<epoch>" shape the stores issue.
func LaterID(t testing.TB, id string, by int) string {
	t.Helper()
	off, epoch, _ := strings.Cut(id, "-")
	n, err := strconv.Atoi(off)
	if err != nil {
		t.Fatalf("event ID %q is not <offset>-<epoch>", id)
	}
	return strconv.Itoa(n+by) + "-" + epoch
}
