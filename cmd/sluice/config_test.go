package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigDefaultsWorkWithNothingSet(t *testing.T) {
	c, err := parseConfig(nil, env(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.Heartbeat != 15*time.Second || c.Retention != 10*time.Minute || c.RetentionBytes != 512<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.TopicMaxBytes != 8<<20 || c.TopicsMaxBytes != 256<<20 || c.MaxTopics != 10_000 {
		t.Fatalf("topic bounds: %v, %v, %d", &c.TopicMaxBytes, &c.TopicsMaxBytes, c.MaxTopics)
	}
	c, err = parseConfig([]string{"--max-topics", "5"}, env("SLUICE_TOPIC_MAX_BYTES", "1MiB", "SLUICE_TOPICS_MAX_BYTES", "2MiB"), io.Discard)
	if err != nil || c.MaxTopics != 5 || c.TopicMaxBytes != 1<<20 || c.TopicsMaxBytes != 2<<20 {
		t.Fatalf("topic bounds set: %v, %v, %d, %v", &c.TopicMaxBytes, &c.TopicsMaxBytes, c.MaxTopics, err)
	}
}

func TestRedisLeaseDefaultsToTheStoresAndTakesItsBounds(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want time.Duration
	}{
		{nil, nil, 3 * time.Second},
		{[]string{"--redis-lease", "500ms"}, nil, 500 * time.Millisecond},
		{nil, []string{"SLUICE_REDIS_LEASE", "10m"}, 10 * time.Minute},
	} {
		c, err := parseConfig(tc.args, env(tc.env...), io.Discard)
		if err != nil || c.RedisLease != tc.want {
			t.Errorf("args %v env %v: lease %v, %v; want %v", tc.args, tc.env, c.RedisLease, err, tc.want)
		}
	}
}

func TestConfigFlagWinsOverEnvironment(t *testing.T) {
	c, err := parseConfig([]string{"--demo-tps", "5"}, env("SLUICE_DEMO_TPS", "7", "SLUICE_ADDR", "127.0.0.1:9999"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DemoTPS != 5 || c.Addr != "127.0.0.1:9999" {
		t.Fatalf("got tps %v addr %q", c.DemoTPS, c.Addr)
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--addr", "nonsense"}, nil, "--addr (SLUICE_ADDR)"},
		{[]string{"--heartbeat", "0s"}, nil, "--heartbeat"},
		{[]string{"--max-generations", "0"}, nil, "--max-generations"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{nil, []string{"SLUICE_RETENTION", "forever"}, "SLUICE_RETENTION"},
		{[]string{"--demo-tps", "-1"}, nil, "--demo-tps"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"--retention-bytes", "lots"}, nil, "retention-bytes"},
		{[]string{"--retention-bytes", "0"}, nil, "--retention-bytes"},
		{nil, []string{"SLUICE_RETENTION_BYTES", "-5MiB"}, "SLUICE_RETENTION_BYTES"},
		{[]string{"--pprof-addr", "0.0.0.0:6060"}, nil, "--pprof-addr"},
		{[]string{"--max-topics", "0"}, nil, "--max-topics"},
		{[]string{"--redis-url", "localhost:6379"}, nil, "--redis-url"},
		{nil, []string{"SLUICE_REDIS_URL", "http://user:pw@localhost"}, "SLUICE_REDIS_URL"},
		{[]string{"--topic-max-bytes", "0"}, nil, "--topic-max-bytes"},
		{nil, []string{"SLUICE_TOPICS_MAX_BYTES", "lots"}, "SLUICE_TOPICS_MAX_BYTES"},
		{[]string{"--topic-max-bytes", "16MiB", "--topics-max-bytes", "8MiB"}, nil, "--topics-max-bytes"},
		{[]string{"--trusted-proxies", "10.0.0.0/8,nginx"}, nil, "--trusted-proxies (SLUICE_TRUSTED_PROXIES)"},
		{[]string{"--tls-cert", "cert.pem"}, nil, "--tls-key (SLUICE_TLS_KEY)"},
		{[]string{"--access-log", "loud"}, nil, "--access-log"},
		{[]string{"--metrics-addr", "9464"}, nil, "--metrics-addr"},
		{[]string{"--redis-lease", "499ms"}, nil, "--redis-lease"},
		{[]string{"--redis-lease", "0s"}, nil, "--redis-lease"},
		{nil, []string{"SLUICE_REDIS_LEASE", "10m1s"}, "--redis-lease (SLUICE_REDIS_LEASE)"},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, env(tt.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("args %v env %v: err %v, want it to name %q", tt.args, tt.env, err, tt.want)
		}
	}
}

func TestSizesTakeBinaryUnits(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "64KiB": 64 << 10, "64K": 64 << 10, "512MiB": 512 << 20, "2GiB": 2 << 30, "3 G": 3 << 30, "10B": 10,
	} {
		c, err := parseConfig([]string{"--retention-bytes", in}, env(), io.Discard)
		if err != nil || int64(c.RetentionBytes) != want {
			t.Errorf("--retention-bytes %s: %d, %v; want %d", in, c.RetentionBytes, err, want)
		}
	}
	for v, want := range map[byteSize]string{512 << 20: "512MiB", 2 << 30: "2GiB", 1536 << 20: "1536MiB", 1000: "1000", 4096: "4KiB"} {
		if got := v.String(); got != want {
			t.Errorf("%d prints as %q, want %q", int64(v), got, want)
		}
	}
}
