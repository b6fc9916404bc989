// Package prom gives Sluice's metrics to Prometheus. The packages of the
// flow (admit, gen, hub, api, ws, openai) each say what they can be watched
// for in a small observer interface of their own, without a dependency on
// any metrics library; this package implements those interfaces with
// github.com/prometheus/client_golang and serves what they count on
// GET /metrics, beside the Go runtime's and the process's own figures.
// cmd/sluice wires it in.
//
// client_golang is Prometheus's own Go client: it writes the exposition
// format (and negotiates OpenMetrics and compression) as Prometheus reads
// it, ships the Go and process collectors, and its counters, gauges and
// histograms are updated with atomic operations only, so that what is
// counted per token or per delivery takes no lock and allocates nothing.
//
// Label values are bounded: transports, stream kinds, end reasons, error
// kinds, routes, configured model and upstream names. No stream ID, API
// key or topic name is ever a label value.
package prom

import (
	"net/http"
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options describe the server being measured.
type Options struct {
	Version, Commit string // for sluice_build_info; "" reads "unknown"
	// Models are the model names the server offers: they, and no other,
	// label the generation metrics (others read "other").
	Models []string
}

// Metrics holds every metric of one server. Make one with New; its methods
// hand out the observers to wire into the other packages. It is safe for
// concurrent use.
type Metrics struct {
	reg        *prometheus.Registry
	models     map[string]bool        // read only after New
	collectors []prometheus.Collector // Sluice's own, for describing them

	requests *prometheus.CounterVec

	streamsOpen *prometheus.GaugeVec
	delivered   *prometheus.CounterVec
	slowCuts    *prometheus.CounterVec
	refusals    *prometheus.CounterVec
	resumes     *prometheus.CounterVec
	publishes   prometheus.Counter

	gensStarted *prometheus.CounterVec
	gensRunning *prometheus.GaugeVec
	gensEnded   *prometheus.CounterVec
	ttft        *prometheus.HistogramVec
	itl         *prometheus.HistogramVec
	tokens      *prometheus.CounterVec

	upAttempts  *prometheus.CounterVec
	upRetries   *prometheus.CounterVec
	upFallbacks *prometheus.CounterVec
	upErrors    *prometheus.CounterVec
}

// Transports, as the "transport" label names them.
const (
	TransportSSE         = "sse"          // SSE streams the hub serves (HTTP/1.1)
	TransportSSEFallback = "sse_fallback" // SSE streams served in their handlers (HTTP/2)
	TransportWS          = "ws"           // subscriptions of /ws connections
)

// Buckets of the generation histograms, in seconds: a first token comes
// after tens of milliseconds to minutes (a model loading), and tokens
// follow each other every few to a few hundred milliseconds.
var (
	ttftBuckets = []float64{0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120}
	itlBuckets  = []float64{0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2.5, 5}
)

// New returns the metrics of a server described by o, registered with the
// Go runtime's and the process's collectors.
func New(o Options) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg, models: make(map[string]bool, len(o.Models))}
	f := m.register
	for _, name := range o.Models {
		m.models[name] = true
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_build_info",
		Help: "Always 1; its labels say which build of Sluice runs."}, []string{"version", "commit", "goversion"})
	build.WithLabelValues(orUnknown(o.Version), orUnknown(o.Commit), runtime.Version()).Set(1)
	f(build)

	m.requests = counterVec(f, "sluice_http_requests_total", "HTTP requests answered, by route pattern and status code (a stream when it ends).", "route", "code")
	m.streamsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_streams_open",
		Help: "Streams open now, by transport (sse: the hub, HTTP/1.1; sse_fallback: in handlers, HTTP/2; ws: /ws subscriptions) and kind (generation, topic)."},
		[]string{"transport", "kind"})
	f(m.streamsOpen)
	m.delivered = counterVec(f, "sluice_events_delivered_total", "Events written to readers, by transport.", "transport")
	m.slowCuts = counterVec(f, "sluice_slow_readers_cut_total", "Readers dropped for reading too slowly, by transport and reason (lagging, write_timeout, send_buffer_full).", "transport", "reason")
	m.refusals = counterVec(f, "sluice_refusals_total", "Requests and operations refused by a limit, by the limit (its flag) and the error's kind.", "limit", "reason")
	m.resumes = counterVec(f, "sluice_resumes_total", "Readers that resumed after an event ID they named, by whether their place was gone (gap).", "gap")
	m.publishes = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_topic_publishes_total", Help: "Events published to topics."})
	f(m.publishes)

	m.gensStarted = counterVec(f, "sluice_generations_started_total", "Generations started, by model.", "model")
	m.gensRunning = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sluice_generations_running", Help: "Generations running now, by model."}, []string{"model"})
	f(m.gensRunning)
	m.gensEnded = counterVec(f, "sluice_generations_ended_total", "Generations ended, by model and reason (done, cancelled, shutdown, error).", "model", "reason")
	m.ttft = histogramVec(f, "sluice_generation_time_to_first_token_seconds", "Time from a generation's start to its first token, by model.", ttftBuckets)
	m.itl = histogramVec(f, "sluice_generation_inter_token_delay_seconds", "Time between a generation's tokens, by model.", itlBuckets)
	m.tokens = counterVec(f, "sluice_generation_tokens_total", "Pieces of answers stored (about a token each), by model.", "model")

	m.upAttempts = counterVec(f, "sluice_upstream_attempts_total", "Requests sent to upstreams (first tries and retries), by upstream.", "upstream")
	m.upRetries = counterVec(f, "sluice_upstream_retries_total", "Requests sent again to the same upstream after a transient failure, by upstream.", "upstream")
	m.upFallbacks = counterVec(f, "sluice_upstream_fallbacks_total", "Moves from an upstream to its fallback, by upstream and fallback.", "upstream", "fallback")
	m.upErrors = counterVec(f, "sluice_upstream_errors_total", "Upstream attempts that failed on the upstream's side, by upstream and error code.", "upstream", "code")

	// Children that exist from the start read 0 rather than nothing, so
	// that rates and dashboards work before the first event.
	for _, tr := range []string{TransportSSE, TransportSSEFallback, TransportWS} {
		for _, kind := range []string{"generation", "topic"} {
			m.streamsOpen.WithLabelValues(tr, kind)
		}
		m.delivered.WithLabelValues(tr)
	}
	m.resumes.WithLabelValues("false")
	m.resumes.WithLabelValues("true")
	for name := range m.models {
		m.gensStarted.WithLabelValues(name)
		m.gensRunning.WithLabelValues(name)
		m.ttft.WithLabelValues(name)
		m.itl.WithLabelValues(name)
		m.tokens.WithLabelValues(name)
	}
	return m
}

func counterVec(register func(prometheus.Collector), name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	register(c)
	return c
}

func histogramVec(register func(prometheus.Collector), name, help string, buckets []float64) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, []string{"model"})
	register(h)
	return h
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Handler serves the metrics in Prometheus's text format (or OpenMetrics,
// when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// register adds one of Sluice's own collectors to those served.
func (m *Metrics) register(c prometheus.Collector) {
	m.reg.MustRegister(c)
	m.collectors = append(m.collectors, c)
}

// model is the label of a model name: itself when the server offers it,
// else "other".
func (m *Metrics) model(name string) string {
	if m.models[name] {
		return name
	}
	return "other"
}

// Answered implements api.RequestObserver.
func (m *Metrics) Answered(route string, status int) {
	if route == "" {
		route = "none"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

// Refused implements admit.Observer and gen.Observer.
func (m *Metrics) Refused(limit, reason string) { m.refusals.WithLabelValues(limit, reason).Inc() }

// Resumed implements admit.Observer.
func (m *Metrics) Resumed(gap bool) { m.resumes.WithLabelValues(strconv.FormatBool(gap)).Inc() }

// Published implements admit.Observer.
func (m *Metrics) Published() { m.publishes.Inc() }

// Attempt implements openai.Observer.
func (m *Metrics) Attempt(upstream string) { m.upAttempts.WithLabelValues(upstream).Inc() }

// Retry implements openai.Observer.
func (m *Metrics) Retry(upstream string) { m.upRetries.WithLabelValues(upstream).Inc() }

// Fallback implements openai.Observer.
func (m *Metrics) Fallback(from, to string) { m.upFallbacks.WithLabelValues(from, to).Inc() }

// Failed implements openai.Observer.
func (m *Metrics) Failed(upstream, kind string) { m.upErrors.WithLabelValues(upstream, kind).Inc() }
