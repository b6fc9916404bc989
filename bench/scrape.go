package bench

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricSamples are the counters and gauges of one GET /metrics: each
// family's samples, each a value and its labels.
type metricSamples map[string][]metricSample

type metricSample struct {
	labels map[string]string
	value  float64
}

// scrapeMetrics reads a server's /metrics. The text format is parsed by
// Prometheus's own parser (github.com/prometheus/common/expfmt, which
// client_golang, the server's side, already brings in), so that what the
// bench reads is what Prometheus would.
func scrapeMetrics(ctx context.Context, host string) (metricSamples, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/metrics", nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := benchClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	out := make(metricSamples, len(fams))
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			s := metricSample{labels: make(map[string]string, len(m.GetLabel()))}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				s.value = m.Counter.GetValue()
			case m.Gauge != nil:
				s.value = m.Gauge.GetValue()
			default:
				continue
			}
			out[name] = append(out[name], s)
		}
	}
	return out, nil
}

// sum is the sum of family name's samples whose labels include where
// (nil: all of them); 0 when there are none.
func (ms metricSamples) sum(name string, where map[string]string) float64 {
	var v float64
	for _, s := range ms[name] {
		match := true
		for k, want := range where {
			match = match && s.labels[k] == want
		}
		if match {
			v += s.value
		}
	}
	return v
}

// values lists the values label takes in family name, sorted.
func (ms metricSamples) values(name, label string) []string {
	var out []string
	for _, s := range ms[name] {
		if v, ok := s.labels[label]; ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}
