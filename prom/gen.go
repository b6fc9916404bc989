package prom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice/gen"
)

// Started implements gen.Observer: the Tracker it returns holds the
// model's metrics, resolved once, so that each token costs a histogram's
// and a counter's atomic updates.
func (m *Metrics) Started(model string) gen.Tracker {
	label := m.model(model)
	m.gensStarted.WithLabelValues(label).Inc()
	running := m.gensRunning.WithLabelValues(label)
	running.Inc()
	return &tracker{m: m, label: label, running: running,
		ttft: m.ttft.WithLabelValues(label), itl: m.itl.WithLabelValues(label), tokens: m.tokens.WithLabelValues(label)}
}

// tracker is the gen.Tracker of one generation.
type tracker struct {
	m         *Metrics
	label     string
	running   prometheus.Gauge
	ttft, itl prometheus.Observer
	tokens    prometheus.Counter
}

func (t *tracker) FirstToken(wait time.Duration) {
	t.ttft.Observe(wait.Seconds())
	t.tokens.Inc()
}

func (t *tracker) NextToken(gap time.Duration) {
	t.itl.Observe(gap.Seconds())
	t.tokens.Inc()
}

func (t *tracker) Ended(reason string) {
	t.running.Dec()
	t.m.gensEnded.WithLabelValues(t.label, reason).Inc()
}
