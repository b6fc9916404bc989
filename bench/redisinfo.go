package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startRedis runs a redis-server of its own (Debian's redis-server, found
// on PATH) on a free loopback port, with persistence off, for the cluster
// scenario, and waits until it answers.
func (r *runner) startRedis(ctx context.Context) (*server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("the cluster scenario starts a redis-server, and none is on PATH (Debian: apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(host)
	dir, err := os.MkdirTemp("", "sluice-bench-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", "", "--loglevel", "warning", "--protected-mode", "no")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{host: host, cmd: cmd, dir: dir}
	for range 500 {
		if _, err := redisDo(host, "PING"); err == nil {
			return s, nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			stopRedis(s)
			return nil, ctx.Err()
		}
	}
	stopRedis(s)
	return nil, errors.New("redis-server did not answer within 10s")
}

// redisDo sends Redis one inline command and returns its reply: a status,
// an integer or a bulk string, as text. The bench asks Redis for little
// (PING, INFO, CONFIG RESETSTAT, FLUSHALL), so a few lines of RESP do,
// rather than a client library.
func redisDo(host string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "%s\r\n", strings.Join(args, " ")); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", errors.New("redis: " + line[1:])
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("redis: unexpected reply %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	case len(line) > 0:
		return line[1:], nil
	}
	return "", errors.New("redis: empty reply")
}

// RedisLoad is what Redis did during one measuring window.
type RedisLoad struct {
	Cores      float64 `json:"cores"`             // redis-server's CPU, in cores
	UsedMemory uint64  `json:"used_memory_bytes"` // INFO memory at the end
	RSS        uint64  `json:"rss_bytes"`
	// Calls counts the commands Redis ran (INFO commandstats, the bench's
	// own left out), those that scripts ran included; Scripts the scripts
	// run (EVALSHA and EVAL: each an append, a read or an open, one round
	// trip each, or one of a pipeline).
	Calls          int64   `json:"calls"`
	Scripts        int64   `json:"scripts"`
	CallsPerUnit   float64 `json:"calls_per_token"` // per delivered token (or fan-out event)
	ScriptsPerUnit float64 `json:"scripts_per_token"`
	// ScriptUsec is the mean time Redis took to run one script, µs: the
	// per-append cost that bounds what one Redis takes.
	ScriptUsec float64        `json:"script_usec"`
	Commands   []RedisCommand `json:"commands"` // the most called, most first
}

// RedisCommand is one line of INFO commandstats.
type RedisCommand struct {
	Name        string  `json:"name"`
	Calls       int64   `json:"calls"`
	UsecPerCall float64 `json:"usec_per_call"`
}

// redisWindow measures Redis over a window: its counters are reset at
// the start (CONFIG RESETSTAT), and read at the end.
type redisWindow struct {
	srv   *server
	start time.Time
	cpu   float64
}

func startRedisWindow(srv *server) (redisWindow, error) {
	if srv == nil {
		return redisWindow{}, nil
	}
	if _, err := redisDo(srv.host, "CONFIG", "RESETSTAT"); err != nil {
		return redisWindow{}, err
	}
	return redisWindow{srv: srv, start: time.Now(), cpu: srv.cpu()}, nil
}

// end returns the window's figures, with calls per unit of units (nil
// when there is no Redis).
func (w redisWindow) end(units int64) (*RedisLoad, error) {
	if w.srv == nil {
		return nil, nil
	}
	secs := time.Since(w.start).Seconds()
	l := &RedisLoad{Cores: (w.srv.cpu() - w.cpu) / secs}
	stats, err := redisDo(w.srv.host, "INFO", "commandstats")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(stats, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		// Redis 7 names subcommands "config|resetstat".
		if base, _, _ := strings.Cut(name, "|"); !ok || !isCmd || base == "info" || base == "config" || base == "ping" || base == "flushall" {
			continue
		}
		c := RedisCommand{Name: name}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls":
				c.Calls, _ = strconv.ParseInt(v, 10, 64)
			case "usec_per_call":
				c.UsecPerCall, _ = strconv.ParseFloat(v, 64)
			}
		}
		l.Calls += c.Calls
		if name == "evalsha" || name == "eval" {
			l.ScriptUsec = (l.ScriptUsec*float64(l.Scripts) + c.UsecPerCall*float64(c.Calls)) / float64(max(l.Scripts+c.Calls, 1))
			l.Scripts += c.Calls
		}
		l.Commands = append(l.Commands, c)
	}
	slices.SortFunc(l.Commands, func(a, b RedisCommand) int { return int(b.Calls - a.Calls) })
	l.Commands = l.Commands[:min(len(l.Commands), 6)]
	if units > 0 {
		l.CallsPerUnit = float64(l.Calls) / float64(units)
		l.ScriptsPerUnit = float64(l.Scripts) / float64(units)
	}
	mem, err := redisDo(w.srv.host, "INFO", "memory")
	if err != nil {
		return nil, err
	}
	l.UsedMemory = infoField(mem, "used_memory")
	l.RSS = infoField(mem, "used_memory_rss")
	return l, nil
}

// infoField returns a numeric field of an INFO reply.
func infoField(info, name string) uint64 {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// stopRedis ends the bench's redis-server and removes its directory.
func stopRedis(s *server) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	waitOrKill(s.cmd)
	os.RemoveAll(s.dir)
}
