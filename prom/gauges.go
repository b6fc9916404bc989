package prom

import "github.com/prometheus/client_golang/prometheus"

// WatchWebSockets serves the number of open /ws connections, which f
// reports when scraped.
func (m *Metrics) WatchWebSockets(f func() int64) {
	m.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_ws_connections_open",
		Help: "WebSocket connections open now."}, func() float64 { return float64(f()) }))
}

// StoreFigures are what a log store reports of what it holds (the memory
// store reports them all; zero where a store does not count).
type StoreFigures struct {
	RetainedLogs    int   // ended logs kept for resuming
	RetainedBytes   int64 // bytes they hold
	Evicted         int64 // ended logs forgotten early for the byte bound, ever
	Topics          int   // topic rings held
	TopicBytes      int64 // bytes of event data they keep
	TopicsForgotten int64 // topics forgotten for being unused, ever
	TopicTrims      int64 // times topics were trimmed for the bound on all of them, ever
}

// WatchStore serves what the log store holds, which f reports when
// scraped.
func (m *Metrics) WatchStore(f func() StoreFigures) {
	m.register(&storeCollector{f: f})
}

var (
	retainedLogs    = prometheus.NewDesc("sluice_store_retained_logs", "Ended streams the store keeps for resuming.", nil, nil)
	retainedBytes   = prometheus.NewDesc("sluice_store_retained_bytes", "Bytes the ended streams kept for resuming hold.", nil, nil)
	evictions       = prometheus.NewDesc("sluice_store_evictions_total", "Ended streams forgotten before their retention was up, to keep within --retention-bytes.", nil, nil)
	topicsHeld      = prometheus.NewDesc("sluice_store_topics", "Topics the store holds.", nil, nil)
	topicBytes      = prometheus.NewDesc("sluice_store_topic_bytes", "Bytes of event data the topics keep for replay.", nil, nil)
	topicsForgotten = prometheus.NewDesc("sluice_store_topics_forgotten_total", "Topics forgotten for being unused for the retention time.", nil, nil)
	topicTrims      = prometheus.NewDesc("sluice_store_topic_trims_total", "Times topics were trimmed to keep within --topics-max-bytes.", nil, nil)
)

// storeCollector asks the store once per scrape for all its figures.
type storeCollector struct {
	f func() StoreFigures
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{retainedLogs, retainedBytes, evictions, topicsHeld, topicBytes, topicsForgotten, topicTrims} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(retainedLogs, float64(s.RetainedLogs))
	gauge(retainedBytes, float64(s.RetainedBytes))
	counter(evictions, float64(s.Evicted))
	gauge(topicsHeld, float64(s.Topics))
	gauge(topicBytes, float64(s.TopicBytes))
	counter(topicsForgotten, float64(s.TopicsForgotten))
	counter(topicTrims, float64(s.TopicTrims))
}
