package openai

import (
	"strings"

	"github.com/sluice-dev/sluice"
)

// Observer is told what a Model does with its upstreams, for metrics.
// Upstreams are named as configured (UpstreamOptions.Name). Its methods
// must be safe for concurrent use and quick.
type Observer interface {
	// Attempt counts a request sent to an upstream, the first or a retry.
	Attempt(upstream string)
	// Retry counts an attempt made again on the same upstream.
	Retry(upstream string)
	// Fallback counts a move from one upstream to its fallback.
	Fallback(from, to string)
	// Failed counts an attempt that failed on the upstream's side: kind
	// is the error's kind (sluice.ErrorKind, "upstream_timeout", …).
	Failed(upstream, kind string)
}

type nopObserver struct{}

func (nopObserver) Attempt(string)          {}
func (nopObserver) Retry(string)            {}
func (nopObserver) Fallback(string, string) {}
func (nopObserver) Failed(string, string)   {}

// upstreamFault returns the kind of err when the upstream is at fault
// (every such error of this package has a kind "upstream_…"), or "" for
// errors of Sluice's side: a cancelled request, a log that refused a
// delta.
func upstreamFault(err error) string {
	if k := sluice.ErrorKind(err); strings.HasPrefix(k, "upstream_") {
		return k
	}
	return ""
}
