package testenv

import (
	"net"
	"strings"
	"testing"
)

func TestStartRedisServesAndStopsAtCleanup(t *testing.T) {
	var addr string
	t.Run("running", func(t *testing.T) {
		r := StartRedis(t)
		addr = r.Addr
		out, err := redisCLI(r.Addr, "ping")
		if err != nil || strings.TrimSpace(out) != "PONG" {
			t.Fatalf("ping: %q, %v", out, err)
		}
		out, _ = redisCLI(r.Addr, "config", "get", "save")
		if !strings.Contains(out, "save\n\n") && !strings.HasSuffix(strings.TrimSpace(out), "save") {
			t.Errorf("persistence is on: config get save = %q", out)
		}
	})
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("redis-server at %s still accepts connections after its test ended", addr)
	}
}

func TestStartRedisClusterHasThreeMastersCoveringEverySlot(t *testing.T) {
	c := StartRedisCluster(t)
	out, err := redisCLI(c.Addrs[0], "cluster", "nodes")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "master"); n != 3 {
		t.Fatalf("cluster nodes shows %d masters, want 3:\n%s", n, out)
	}
	for _, a := range c.Addrs {
		out, _ := redisCLI(a, "cluster", "info")
		if !strings.Contains(out, "cluster_slots_assigned:16384") || !strings.Contains(out, "cluster_state:ok") {
			t.Errorf("node %s: %s", a, out)
		}
	}
}

func TestRedisRestartComesBackEmptyOnTheSamePort(t *testing.T) {
	r := StartRedis(t)
	if out, err := redisCLI(r.Addr, "set", "k", "v"); err != nil || strings.TrimSpace(out) != "OK" {
		t.Fatalf("set: %q, %v", out, err)
	}
	r.Restart(t)
	out, err := redisCLI(r.Addr, "exists", "k")
	if err != nil || strings.TrimSpace(out) != "0" {
		t.Fatalf("after the restart, exists k = %q, %v; want 0 from a new, empty server on %s", out, err, r.Addr)
	}
}
