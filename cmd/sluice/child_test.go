package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv, set in its environment, makes the test binary a `sluice serve`
// of the arguments it is given (see TestMain), for tests that need a node
// in a process of its own: one they can kill -9 or freeze.
const childEnv = "SLUICE_TEST_CHILD"

// runChild serves as `sluice serve` would, until SIGTERM, and writes
// "listening <addr>" to stdout once it listens. Its logs go to stderr.
func runChild(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// No conversations unless the test asks for them (with --data-dir): a
	// test node must never write into the user's data directory.
	cfg, err := parseConfig(append([]string{"--addr", "127.0.0.1:0", "--data-dir", "off"}, args...), func(string) string { return "" }, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = serve(ctx, cfg, cfg.logger(os.Stderr), func(addr string) { fmt.Printf("listening %s\n", addr) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a node in a process of its own.
type child struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

// startChild starts a node in a process of its own with args, and returns
// once it listens. It is killed, if still running, when the test ends.
// With -v its logs go to the test's log.
func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	logs := make(chan struct{})
	go func() {
		defer close(logs)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if testing.Verbose() {
				t.Logf("child %d: %s", cmd.Process.Pid, sc.Text())
			}
		}
	}()
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
			}
		}
		io.Copy(io.Discard, stdout)
		<-logs
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	})
	select {
	case a := <-addr:
		c.URL = "http://" + a
	case <-c.done:
		t.Fatalf("the child node exited before it listened: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		t.Fatal("the child node did not listen within 30s")
	}
	return c
}

// signal sends sig to the child.
func (c *child) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}
