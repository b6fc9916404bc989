package api

import (
	"bytes"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
)

// Stats are the server's own figures, for `sluice bench` and operators:
// GET /debug/stats.
type Stats struct {
	Streams     int64  `json:"streams"`        // SSE responses and WebSocket connections open now
	WebSockets  int64  `json:"ws_connections"` // of those, WebSocket connections (see Server.CountWebSockets)
	Generations int    `json:"generations"`    // generations running now
	Goroutines  int    `json:"goroutines"`
	HeapBytes   uint64 `json:"heap_bytes"` // live heap objects
	GoSysBytes  uint64 `json:"go_sys_bytes"`
	RSSBytes    uint64 `json:"rss_bytes"` // resident set size, from /proc (0 elsewhere)
	// Ended streams kept for resuming, the bytes they hold, and how many
	// were forgotten early to stay within --retention-bytes (stores that
	// count these: the memory store).
	RetainedStreams int   `json:"retained_streams"`
	RetainedBytes   int64 `json:"retained_bytes"`
	EvictedStreams  int64 `json:"evicted_streams"`
}

// retainer is a store that reports what its ended logs hold.
type retainer interface {
	Retained() (logs int, bytes int64, evicted int64)
}

var statSamples = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/total:bytes"},
}

func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.enter(w, r); !ok {
		return
	}
	if r.URL.Query().Get("gc") == "1" {
		runtime.GC() // so that heap figures compare live objects only
	}
	samples := make([]metrics.Sample, len(statSamples))
	copy(samples, statSamples)
	metrics.Read(samples)
	var ws int64
	if f := s.ws.Load(); f != nil {
		ws = (*f)()
	}
	st := Stats{
		Streams:     s.streams.Load() + int64(s.hub.Len()) + ws,
		WebSockets:  ws,
		Generations: s.runner.Running(),
		Goroutines:  runtime.NumGoroutine(),
		HeapBytes:   samples[0].Value.Uint64(),
		GoSysBytes:  samples[1].Value.Uint64(),
		RSSBytes:    rss(),
	}
	if r, ok := s.store.(retainer); ok {
		st.RetainedStreams, st.RetainedBytes, st.EvictedStreams = r.Retained()
	}
	writeJSON(w, http.StatusOK, st)
}

// rss reads the resident set size from /proc/self/status.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			return kb << 10
		}
	}
	return 0
}
