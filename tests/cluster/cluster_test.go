// Package cluster_test runs Sluice as operators run it at scale: three
// `sluice serve` processes (this module's binary, built once for the
// tests) sharing one real Redis, behind a real nginx configured as
// docs/scale-out.md says, round robin. Clients talk to nginx only, so
// every reconnect may land on any node.
package cluster_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// sluiceBin is the sluice binary the nodes run, built by TestMain.
var sluiceBin string

// client talks to nginx. Its transport keeps many connections open: the
// chaos test holds hundreds at once.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests builds the binary, runs the tests and removes the binary. Like
// testenv.RunWithoutLeaks, it fails the run if a goroutine of the tests
// outlives them (it cannot use it: that exits before the binary is gone).
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	sluiceBin = filepath.Join(dir, "sluice")
	// Without the race detector, whatever this test runs with: the packages'
	// own tests look for races in process. A node built with it takes
	// several times the CPU, and on a machine loaded by other tests its
	// lease renewals then come late enough for the others to take it for
	// lost (node_lost) while it still writes.
	build := exec.Command("go", "build", "-o", sluiceBin, "github.com/sluice-dev/sluice/cmd/sluice")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building sluice: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	client.CloseIdleConnections()
	if err := goleak.Find(); code == 0 && err != nil {
		fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
		code = 1
	}
	return code
}

// node is one `sluice serve` process.
type node struct {
	URL  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and its output is read
	out  *tail

	killOnce sync.Once
}

// startNode starts `sluice serve` on a free loopback port with the given
// flags, and returns once it listens. It is stopped (SIGTERM, then
// SIGKILL) when the test ends.
func startNode(t *testing.T, args ...string) *node {
	t.Helper()
	// No conversations: the nodes share streams, not a database, and must
	// never write into the user's data directory.
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json", "--data-dir", "off"}, args...)
	cmd := exec.Command(sluiceBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{cmd: cmd, done: make(chan struct{}), out: &tail{}}
	listening := make(chan string, 1)
	go func() {
		defer close(n.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec struct {
				Msg string `json:"msg"`
				URL string `json:"url"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "sluice listening" {
				listening <- rec.URL
			}
			n.out.add(sc.Text())
		}
		cmd.Wait()
	}()
	t.Cleanup(func() { n.stop(t) })
	select {
	case n.URL = <-listening:
	case <-n.done:
		t.Fatalf("sluice serve exited before listening:%s", n.out)
	case <-time.After(60 * time.Second):
		t.Fatalf("sluice serve not listening after 60 s:%s", n.out)
	}
	// Warnings and errors it logs are the test's to see.
	t.Cleanup(func() {
		if s := n.out.String(); s != "" && testing.Verbose() {
			t.Logf("node %s logged:%s", n.URL, s)
		}
	})
	return n
}

// kill ends the node at once, as a crash or `kill -9` would.
func (n *node) kill() {
	n.killOnce.Do(func() { n.cmd.Process.Signal(syscall.SIGKILL) })
	<-n.done
}

// stop asks the node to shut down and waits, killing it after 30 s.
func (n *node) stop(t *testing.T) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		t.Errorf("node %s did not stop within 30 s of SIGTERM", n.URL)
		n.kill()
	}
}

// tail keeps the last lines a process printed, for failure messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (b *tail) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.lines = append(b.lines, line); len(b.lines) > 30 {
		b.lines = b.lines[1:]
	}
}

func (b *tail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	for _, l := range b.lines {
		sb.WriteString("\n\t" + l)
	}
	return sb.String()
}

// Write takes a process's output, line by line.
func (b *tail) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		b.add(line)
	}
	return len(p), nil
}
