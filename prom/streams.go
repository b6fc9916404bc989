package prom

import "github.com/prometheus/client_golang/prometheus"

// Streams counts the streams of one transport. It implements hub.Observer,
// api.StreamObserver and ws.Observer: every method is an atomic update of a
// metric resolved in advance, but CutSlow, which is rare.
type Streams struct {
	transport   string
	generations prometheus.Gauge
	topics      prometheus.Gauge
	delivered   prometheus.Counter
	cuts        *prometheus.CounterVec
}

// Streams returns the observer of the streams of one transport
// (TransportSSE, TransportSSEFallback or TransportWS).
func (m *Metrics) Streams(transport string) *Streams {
	return &Streams{
		transport:   transport,
		generations: m.streamsOpen.WithLabelValues(transport, "generation"),
		topics:      m.streamsOpen.WithLabelValues(transport, "topic"),
		delivered:   m.delivered.WithLabelValues(transport),
		cuts:        m.slowCuts,
	}
}

func (s *Streams) gauge(topic bool) prometheus.Gauge {
	if topic {
		return s.topics
	}
	return s.generations
}

// Opened counts a stream opened.
func (s *Streams) Opened(topic bool) { s.gauge(topic).Inc() }

// Closed counts a stream closed.
func (s *Streams) Closed(topic bool) { s.gauge(topic).Dec() }

// Delivered counts n events written to readers.
func (s *Streams) Delivered(n int) {
	if n > 0 {
		s.delivered.Add(float64(n))
	}
}

// CutSlow counts a reader dropped for reading too slowly.
func (s *Streams) CutSlow(reason string) { s.cuts.WithLabelValues(s.transport, reason).Inc() }
