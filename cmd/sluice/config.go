package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/memory"
	"github.com/sluice-dev/sluice/redis"
)

// Config is everything `sluice serve` can be told, from flags and SLUICE_*
// environment variables (a flag wins over its variable).
type Config struct {
	Addr           string
	LogLevel       slog.Level
	LogFormat      string
	Heartbeat      time.Duration
	Retry          time.Duration
	WriteTimeout   time.Duration
	ReadTimeout    time.Duration
	IdleTimeout    time.Duration
	Retention      time.Duration
	RetentionBytes byteSize
	ShutdownGrace  time.Duration
	MaxBodyBytes   int64
	MaxGenerations int
	MaxLogLen      int
	TopicMaxLen    int
	TopicMaxBytes  byteSize
	TopicsMaxBytes byteSize
	MaxTopics      int
	DemoTTFT       time.Duration
	DemoTPS        float64
	Guard          guardConfig // keys, CORS and limits (guard.go)
	ConfigFile     string      // the TOML file of upstreams and models (configfile.go)
	UpstreamURL    string      // the simple case: one upstream (models.go)
	UpstreamModels string      // its models, comma-separated
	PprofAddr      string      // serve net/http/pprof here, loopback only (pprof.go)
	MetricsAddr    string      // serve /metrics here, on a listener of its own (metrics.go)
	TLSCert        string      // serve HTTPS with this certificate chain and TLSKey (tls.go)
	TLSKey         string
	AccessLog      string // the access log's level, or "off"
	RedisURL       string // keep logs in Redis, shared with other nodes (store.go)
	RedisCoalesce  time.Duration
	RedisLease     time.Duration
	Conv           convConfig // where conversations are kept (conversations.go)

	// Upstreams is what ConfigFile or UpstreamURL describe, validated.
	Upstreams upstreamConfig
}

// envName is the environment variable that sets the flag name:
// --demo-tps is SLUICE_DEMO_TPS.
func envName(flagName string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig fills a Config from args and the environment, and validates
// it. Errors name the flag or variable at fault.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("sluice serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "address to listen on (host:port)")
	fs.TextVar(&c.LogLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 15*time.Second, "send a ': ping' comment on a stream idle for this long")
	fs.DurationVar(&c.Retry, "retry", 3*time.Second, "reconnect delay suggested to SSE clients (retry:)")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", 30*time.Second, "drop a reader whose write takes longer than this")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", 30*time.Second, "close a connection whose request, headers and body, takes longer than this to arrive")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", time.Minute, "close a kept-alive connection idle for this long")
	fs.DurationVar(&c.Retention, "retention", 10*time.Minute, "how long a finished stream stays resumable, and an unused topic is kept")
	c.RetentionBytes = memory.DefaultRetainedBytes
	fs.Var(&c.RetentionBytes, "retention-bytes", "most memory finished streams may hold while resumable; past it the oldest go first (e.g. 512MiB, 2GiB)")
	fs.DurationVar(&c.ShutdownGrace, "shutdown-grace", 30*time.Second, "on SIGTERM, how long running generations may go on")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 4<<20, "largest request body accepted")
	fs.IntVar(&c.MaxGenerations, "max-generations", 1000, "generations running at once; more are refused with 503")
	fs.IntVar(&c.MaxLogLen, "max-log-len", 65536, "most events one generation may write")
	fs.IntVar(&c.TopicMaxLen, "topic-max-len", 1000, "events a topic keeps for replay")
	c.TopicMaxBytes = memory.DefaultTopicMaxBytes
	fs.Var(&c.TopicMaxBytes, "topic-max-bytes", "bytes of events a topic keeps for replay (its newest event always stays)")
	c.TopicsMaxBytes = memory.DefaultTopicsMaxBytes
	fs.Var(&c.TopicsMaxBytes, "topics-max-bytes", "bytes of events all topics keep together; past it the least recently used lose their oldest first")
	fs.IntVar(&c.MaxTopics, "max-topics", memory.DefaultMaxTopics, "topics held at once; creating one more is refused with 503")
	fs.DurationVar(&c.DemoTTFT, "demo-ttft", 300*time.Millisecond, "demo model: time to first token")
	fs.Float64Var(&c.DemoTPS, "demo-tps", 30, "demo model: tokens per second (0: as fast as possible)")
	c.Guard.flags(fs)
	fs.StringVar(&c.ConfigFile, "config", "", "TOML file of OpenAI-compatible upstreams and the models they serve")
	fs.StringVar(&c.UpstreamURL, "upstream-url", "", "one OpenAI-compatible upstream, e.g. http://localhost:11434/v1 (its key: OPENAI_API_KEY)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060")
	fs.StringVar(&c.RedisURL, "redis-url", "", "keep streams and topics in Redis, shared by every node given the same, e.g. redis://127.0.0.1:6379/0 (empty: in this process's memory)")
	fs.DurationVar(&c.RedisCoalesce, "redis-coalesce", redis.DefaultCoalesce, "with --redis-url, under load: the least time between two rounds of token appends to Redis; tokens that come within it go together, one script run a stream (a token after a quiet spell goes at once; 0: every token alone)")
	fs.DurationVar(&c.RedisLease, "redis-lease", redis.DefaultLease, "with --redis-url: how long this node's claim on the streams it generates lasts unrenewed (it renews every third of it); a node that stops renewing (killed, cut off, frozen) has its streams ended with a node_lost error within 4/3 of it. Raise it where load or pauses delay renewals enough to end live streams as lost; every node should have the same")
	fs.StringVar(&c.UpstreamModels, "upstream-models", "", "the upstream's models to offer, comma-separated: name or name=upstream-name")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "serve Prometheus metrics (GET /metrics) on this address of its own, where no API key is asked, e.g. 127.0.0.1:9464; without it, /metrics is on --addr, behind the API keys")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS (HTTP/2 and HTTP/1.1) with this PEM certificate chain; reloaded when it changes (needs --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "the PEM private key of --tls-cert; reloaded when it changes")
	fs.StringVar(&c.AccessLog, "access-log", "info", "level of the access log, one line per request: debug, info, warn or off")
	c.Conv.flags(fs, getenv)

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := errors.Join(c.validate(), c.Conv.validate(), c.Guard.load()); err != nil {
		return c, err
	}
	var err error
	c.Upstreams, err = loadUpstreams(c, getenv)
	return c, err
}

func (c Config) validate() error {
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s (%s): %s", flag, envName(flag), fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", "%q is not host:port", c.Addr)
	}
	if c.PprofAddr != "" && !loopbackAddr(c.PprofAddr) {
		bad("pprof-addr", "%q is not a loopback host:port; the profiler exposes the process", c.PprofAddr)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("metrics-addr", "%q is not host:port", c.MetricsAddr)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("tls-cert", "--tls-cert and --tls-key (%s) go together: give both or neither", envName("tls-key"))
	}
	if _, _, err := c.accessLogLevel(); err != nil {
		bad("access-log", "%q is none of debug, info, warn, error or off", c.AccessLog)
	}
	if c.RedisCoalesce < 0 {
		bad("redis-coalesce", "must not be negative")
	}
	if c.RedisLease < minRedisLease || c.RedisLease > maxRedisLease {
		bad("redis-lease", "%v is not within %v..%v", c.RedisLease, minRedisLease, maxRedisLease)
	}
	if c.RedisURL != "" && !validRedisURL(c.RedisURL) {
		bad("redis-url", "want redis://[user:password@]host:port[/db], rediss:// for TLS, or unix:///path")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format", "%q is neither text nor json", c.LogFormat)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"heartbeat", c.Heartbeat}, {"retry", c.Retry}, {"write-timeout", c.WriteTimeout},
		{"read-timeout", c.ReadTimeout}, {"idle-timeout", c.IdleTimeout}, {"retention", c.Retention}} {
		if d.v <= 0 {
			bad(d.name, "must be positive, got %v", d.v)
		}
	}
	if c.ShutdownGrace < 0 {
		bad("shutdown-grace", "must not be negative")
	}
	if c.DemoTTFT < 0 {
		bad("demo-ttft", "must not be negative")
	}
	if c.DemoTPS < 0 {
		bad("demo-tps", "must not be negative")
	}
	for _, n := range []struct {
		name string
		v    int64
	}{{"retention-bytes", int64(c.RetentionBytes)}, {"max-body-bytes", c.MaxBodyBytes}, {"max-generations", int64(c.MaxGenerations)},
		{"max-log-len", int64(c.MaxLogLen)}, {"topic-max-len", int64(c.TopicMaxLen)}, {"topic-max-bytes", int64(c.TopicMaxBytes)},
		{"topics-max-bytes", int64(c.TopicsMaxBytes)}, {"max-topics", int64(c.MaxTopics)}} {
		if n.v < 1 {
			bad(n.name, "must be at least 1, got %d", n.v)
		}
	}
	if c.TopicsMaxBytes < c.TopicMaxBytes {
		bad("topics-max-bytes", "%v is less than --topic-max-bytes %v: one topic could not keep what it may", &c.TopicsMaxBytes, &c.TopicMaxBytes)
	}
	return errors.Join(errs...)
}

// Bounds of --redis-lease. Under half a second, renewals (every third of
// it) come so often, and a late one counts so soon, that a busy node would
// lose live streams; over ten minutes, readers of a dead node's streams
// wait that long to hear of it.
const (
	minRedisLease = 500 * time.Millisecond
	maxRedisLease = 10 * time.Minute
)

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// accessLogLevel returns the access log's level, or off.
func (c Config) accessLogLevel() (level slog.Level, off bool, err error) {
	if strings.EqualFold(c.AccessLog, "off") {
		return 0, true, nil
	}
	err = level.UnmarshalText([]byte(c.AccessLog))
	return level, false, err
}

func (c Config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// byteSize is a flag of a number of bytes, plain or with a binary unit:
// 4096, 64KiB, 512MiB, 2GiB (K, M and G mean the same).
type byteSize int64

var byteUnits = []struct {
	suffix string
	n      int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}

func (b *byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if v, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size such as 4096, 64KiB, 512MiB or 2GiB", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func (b *byteSize) String() string {
	v := int64(*b)
	for _, u := range []int{2, 1, 0} { // GiB, MiB, KiB: the largest that divides
		if unit := byteUnits[u]; v >= unit.n && v%unit.n == 0 {
			return strconv.FormatInt(v/unit.n, 10) + unit.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}
