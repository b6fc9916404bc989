package convo

import (
	"context"
	"time"

	"github.com/sluice-dev/sluice"
)

// sweep marks interrupted, every SweepEvery, the answers whose heartbeat
// has been quiet for longer than Stale: their writer's node died (killed,
// cut off) before it stored their end. Every node runs one; the store's
// SweepInterrupted is one statement, so that sweepers that race mark each
// answer once, and a recorder that is alive (it refreshes its heartbeat at
// least four times per Stale) is never taken for dead.
func (s *Service) sweep() {
	defer s.wg.Done()
	s.sweepOnce() // at start: answers left by this node's previous run
	t := time.NewTicker(s.opts.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweepOnce()
		}
	}
}

func (s *Service) sweepOnce() {
	ctx, cancel := context.WithTimeout(s.ctx, writeTimeout)
	defer cancel()
	swept, err := s.store.SweepInterrupted(ctx, time.Now().Add(-s.opts.Stale))
	n := sluice.SweptMessages(swept)
	s.obs.Swept(n, err)
	switch {
	case err != nil:
		s.log.Warn("conversations: cannot sweep interrupted answers", "err", err)
	case n > 0:
		s.log.Info("conversations: marked answers interrupted; their writer stopped", "count", n, "stale", s.opts.Stale)
	}
	// Tabs and devices showing those answers as streaming learn that they
	// ended, as they do of every other change.
	for _, c := range swept {
		s.changed(ctx, c.Owner, c.ConversationID)
	}
}
