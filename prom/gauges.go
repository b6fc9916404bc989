package prom

import "github.com/prometheus/client_golang/prometheus"

// WatchWebSockets serves the number of open /ws connections, which f
// reports when scraped.
func (m *Metrics) WatchWebSockets(f func() int64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_ws_connections_open",
		Help: "WebSocket connections open now."}, func() float64 { return float64(f()) }))
}

// WatchStore serves what the log store holds, which f reports when
// scraped: the ended logs kept for resuming, the bytes they hold, and how
// many ended logs were forgotten early to stay within the byte bound.
func (m *Metrics) WatchStore(f func() (logs int, bytes int64, evicted int64)) {
	m.reg.MustRegister(&storeCollector{f: f})
}

var (
	retainedLogs  = prometheus.NewDesc("sluice_store_retained_logs", "Ended streams the store keeps for resuming.", nil, nil)
	retainedBytes = prometheus.NewDesc("sluice_store_retained_bytes", "Bytes the ended streams kept for resuming hold.", nil, nil)
	evictions     = prometheus.NewDesc("sluice_store_evictions_total", "Ended streams forgotten before their retention was up, to keep within --retention-bytes.", nil, nil)
)

// storeCollector asks the store once per scrape for all three figures.
type storeCollector struct {
	f func() (int, int64, int64)
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- retainedLogs
	ch <- retainedBytes
	ch <- evictions
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	logs, bytes, evicted := c.f()
	ch <- prometheus.MustNewConstMetric(retainedLogs, prometheus.GaugeValue, float64(logs))
	ch <- prometheus.MustNewConstMetric(retainedBytes, prometheus.GaugeValue, float64(bytes))
	ch <- prometheus.MustNewConstMetric(evictions, prometheus.CounterValue, float64(evicted))
}
