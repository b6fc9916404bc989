package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// workerProc is a worker process and the pipe to it.
type workerProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	reports chan Report
}

// startWorker starts a worker process and gives it job.
func (r *runner) startWorker(job Job) (*workerProc, error) {
	args := r.cfg.WorkerCommand
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), r.cfg.WorkerEnv...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a worker: %w", err)
	}
	p := &workerProc{cmd: cmd, in: in, reports: make(chan Report, 4)}
	go func() { // ends when the worker's stdout closes
		defer close(p.reports)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var rep Report
			if json.Unmarshal(sc.Bytes(), &rep) == nil {
				p.reports <- rep
			}
		}
	}()
	job.Deadline = r.deadline.Add(30 * time.Second)
	if err := p.send(command{Cmd: "job", Job: &job}); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func (p *workerProc) send(c command) error {
	b, _ := json.Marshal(c)
	_, err := p.in.Write(append(b, '\n'))
	return err
}

// recv waits for the worker's next report.
func (p *workerProc) recv(ctx context.Context, timeout time.Duration) (Report, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case rep, ok := <-p.reports:
		if !ok {
			return rep, errors.New("a worker exited early (its stderr says why)")
		}
		return rep, nil
	case <-t.C:
		return Report{}, fmt.Errorf("a worker did not answer within %v", timeout)
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}

// kill ends the worker: stdin closed, then SIGKILL if it lingers.
func (p *workerProc) kill() {
	p.in.Close()
	waitOrKill(p.cmd)
}

// waitOrKill waits for cmd to exit, and kills it if it has not within 10 s.
func waitOrKill(cmd *exec.Cmd) {
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// server is a server under test: one the bench started, or one given by
// --url.
type server struct {
	host   string // host:port
	cmd    *exec.Cmd
	scheme string // "http", or "https" for a server started with TLS
	dir    string // a directory of its own, if any (the cluster's Redis)
}

// startServer runs `sluice serve` (or, with baseline, the naive baseline
// server) on a free loopback port and waits until it answers; extra are more
// flags for either.
func (r *runner) startServer(ctx context.Context, baseline bool, extra ...string) (*server, error) {
	if r.cfg.URL != "" {
		u, _ := url.Parse(r.cfg.URL)
		return &server{host: u.Host}, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := ln.Addr().String()
	ln.Close()
	var args []string
	if baseline {
		args = []string{"bench-baseline", "--addr", host, "--demo-ttft", r.cfg.DemoTTFT.String(),
			"--demo-tps", strconv.FormatFloat(r.cfg.DemoTPS, 'f', -1, 64)}
		args = append(args, extra...)
	} else {
		// Errors only: at the end of a capacity step the server cuts every
		// generation under way, and says so of each at level warn.
		args = slices.Concat([]string{"serve", "--addr", host, "--log-level", "error",
			"--demo-ttft", r.cfg.DemoTTFT.String(), "--demo-tps", strconv.FormatFloat(r.cfg.DemoTPS, 'f', -1, 64),
			"--max-generations", "50000", "--shutdown-grace", "1s", "--retention", "1m",
			// Measure streams, not a database; and keep none in the user's.
			"--data-dir", "off"}, r.cfg.ServerArgs, extra)
	}
	cmd := exec.Command(r.cfg.Exe, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{host: host, cmd: cmd, scheme: "http"}
	if slices.Contains(extra, "--tls-cert") {
		s.scheme = "https"
	}
	for range 500 {
		if resp, err := benchClient.Get(s.scheme + "://" + host + "/debug/stats"); err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
	}
	s.stop()
	return nil, fmt.Errorf("the server %v did not start within 10s", args)
}

// stop ends a server the bench started: SIGTERM, then SIGKILL after 10 s.
func (s *server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	waitOrKill(s.cmd)
	http.DefaultClient.CloseIdleConnections()
	benchClient.CloseIdleConnections()
}

// cpu returns the server's CPU time so far, in seconds, when the bench
// started it (from /proc), or -1.
func (s *server) cpu() float64 {
	if s.cmd == nil {
		return -1
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the command name, which ends with the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// ServerStats are the figures of GET /debug/stats.
type ServerStats struct {
	Streams     int64  `json:"streams"`
	Generations int    `json:"generations"`
	Goroutines  int    `json:"goroutines"`
	HeapBytes   uint64 `json:"heap_bytes"`
	GoSysBytes  uint64 `json:"go_sys_bytes"`
	RSSBytes    uint64 `json:"rss_bytes"`
}

// stats asks the server for its figures, after a GC so that the heap holds
// live objects only.
func (s *server) stats(ctx context.Context) (ServerStats, error) {
	var st ServerStats
	scheme := s.scheme
	if scheme == "" {
		scheme = "http"
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", scheme+"://"+s.host+"/debug/stats?gc=1", nil)
	resp, err := benchClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("GET /debug/stats: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// CheckLoopback refuses a target that is not on this machine's loopback:
// the bench sends load, and load goes nowhere else.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q is not an http://host:port URL", raw)
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	ip := net.ParseIP(h)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (127.0.0.0/8, ::1 or localhost): the bench only loads this machine", h)
	}
	if u.Port() == "" {
		return fmt.Errorf("%q has no port", raw)
	}
	return nil
}
