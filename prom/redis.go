package prom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// redisCommands are the round trips the Redis store makes, as
// redis.Observer names them.
var redisCommands = []string{"open", "append", "last", "read", "touch", "lease", "stop"}

// Redis counts the Redis store's round trips; it implements
// redis.Observer. Each command's metrics are resolved once, so that an
// append costs two atomic updates and no lock.
type Redis struct {
	byName map[string]redisMetrics // read only
	other  redisMetrics
}

type redisMetrics struct {
	duration prometheus.Observer
	errors   prometheus.Counter
}

// Redis adds the metrics of a Redis store to those served, and returns the
// observer to give the store. A node without Redis serves none of them.
func (m *Metrics) Redis() *Redis {
	d := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sluice_redis_command_duration_seconds",
		Help:    "Round trips of the Redis store (open, append, last, read, touch, lease, stop), from sending to the answer.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}},
		[]string{"command"})
	e := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_redis_errors_total",
		Help: "Round trips of the Redis store that Redis failed or that could not reach it, by command."}, []string{"command"})
	m.register(d)
	m.register(e)
	r := &Redis{byName: make(map[string]redisMetrics, len(redisCommands)),
		other: redisMetrics{duration: d.WithLabelValues("other"), errors: e.WithLabelValues("other")}}
	for _, c := range redisCommands {
		r.byName[c] = redisMetrics{duration: d.WithLabelValues(c), errors: e.WithLabelValues(c)}
	}
	return r
}

// Command implements redis.Observer.
func (r *Redis) Command(name string, d time.Duration, err error) {
	c, ok := r.byName[name]
	if !ok {
		c = r.other
	}
	c.duration.Observe(d.Seconds())
	if err != nil {
		c.errors.Inc()
	}
}
