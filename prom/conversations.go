package prom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/convo"
)

// Conversations counts what the conversation service writes; it
// implements convo.Observer. Every label value is resolved in advance, but
// an unknown operation's or status's, which reads "other".
type Conversations struct {
	writes   *prometheus.CounterVec
	ok       map[string]prometheus.Counter  // operation: its successful writes
	duration map[string]prometheus.Observer // operation
	batches  prometheus.Counter
	recorded map[string]prometheus.Counter // status
	sweeps   map[string]prometheus.Counter // result
	swept    prometheus.Counter
}

// recordedStatuses are the ends of answers, as the "status" label names
// them.
var recordedStatuses = []string{string(sluice.StatusCompleted), string(sluice.StatusCancelled), string(sluice.StatusFailed),
	string(sluice.StatusInterrupted), convo.RecordedNotStored}

// Conversations adds the metrics of a conversation store to those served,
// and returns the observer to give the convo.Service. A node that keeps no
// conversations serves none of them.
func (m *Metrics) Conversations() *Conversations {
	c := &Conversations{
		ok: make(map[string]prometheus.Counter), duration: make(map[string]prometheus.Observer),
		recorded: make(map[string]prometheus.Counter), sweeps: make(map[string]prometheus.Counter),
	}
	c.writes = counterVec(m.register, "sluice_conversation_store_writes_total",
		"Writes to the conversation store, by operation (create_conversation, add_items, update_message, touch, sweep, ...) and result (ok, or the error's code).", "operation", "result")
	dv := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_conversation_store_write_duration_seconds",
		Help:    "Time a write to the conversation store took, by operation, failures included.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}},
		[]string{"operation"})
	m.register(dv)
	c.batches = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_conversation_recorder_batches_total",
		Help: "Writes of answers still streaming: the text so far, at most once a second per answer."})
	m.register(c.batches)
	rv := counterVec(m.register, "sluice_conversation_answers_recorded_total",
		"Answers whose recording ended, by the status stored (completed, cancelled, failed, interrupted) or not_stored.", "status")
	sv := counterVec(m.register, "sluice_conversation_sweeps_total",
		"Sweeps for answers whose writer died, by result (ok, error).", "result")
	c.swept = prometheus.NewCounter(prometheus.CounterOpts{Name: "sluice_conversation_swept_interrupted_total",
		Help: "Answers the sweepers marked interrupted: their writer's heartbeat had gone stale."})
	m.register(c.swept)

	for _, op := range append(convo.Operations, "other") {
		c.ok[op] = c.writes.WithLabelValues(op, "ok")
		c.duration[op] = dv.WithLabelValues(op)
	}
	for _, s := range append(recordedStatuses, "other") {
		c.recorded[s] = rv.WithLabelValues(s)
	}
	for _, r := range []string{"ok", "error"} {
		c.sweeps[r] = sv.WithLabelValues(r)
	}
	return c
}

// Wrote implements convo.Observer. A failure's result is its error code,
// one of the few sluice.ErrorCode returns: a bounded label.
func (c *Conversations) Wrote(op string, d time.Duration, err error) {
	ok, known := c.ok[op]
	if !known {
		op, ok = "other", c.ok["other"]
	}
	if err == nil {
		ok.Inc()
	} else {
		c.writes.WithLabelValues(op, sluice.ErrorCode(err)).Inc()
	}
	c.duration[op].Observe(d.Seconds())
}

// Batch implements convo.Observer.
func (c *Conversations) Batch() { c.batches.Inc() }

// Recorded implements convo.Observer.
func (c *Conversations) Recorded(status string) {
	r, ok := c.recorded[status]
	if !ok {
		r = c.recorded["other"]
	}
	r.Inc()
}

// Swept implements convo.Observer.
func (c *Conversations) Swept(marked int, err error) {
	if err != nil {
		c.sweeps["error"].Inc()
		return
	}
	c.sweeps["ok"].Inc()
	c.swept.Add(float64(marked))
}
