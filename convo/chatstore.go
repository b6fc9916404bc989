package convo

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/wire"
)

// A chat's own messages are stored off its request path (see Prepare):
// its client is answered as soon as the generation has started, and a
// goroutine of the Service's writes them, then records the answer.
// Conversations whose write is under way on this node are kept in
// Service.pending, so that the next chat on one continues after it.

// orderWait bounds how long a chat waits in Prepare for this node's
// earlier chat on the same conversation to be stored, and how long that
// chat's own write waits for it. Past it the chat goes on from what is
// stored (its answer then becomes a sibling rather than a follower): a
// database slow enough to take this long would otherwise hold up every
// next message of the conversation.
const orderWait = 5 * time.Second

// beginStore notes that a write to conversation id begins. It returns the
// write before it on this node (nil when there is none, or a closed
// channel when it is done), and what to call when this one is done.
func (s *Service) beginStore(id string) (prev <-chan struct{}, done func()) {
	ch := make(chan struct{})
	s.pendMu.Lock()
	prev = s.pending[id]
	s.pending[id] = ch
	s.pendMu.Unlock()
	return prev, func() {
		close(ch)
		s.pendMu.Lock()
		if s.pending[id] == ch {
			delete(s.pending, id)
		}
		s.pendMu.Unlock()
	}
}

// awaitStored waits, up to orderWait, until this node's last write to
// conversation id begun so far is done.
func (s *Service) awaitStored(ctx context.Context, id string) {
	s.pendMu.Lock()
	ch := s.pending[id]
	s.pendMu.Unlock()
	if ch == nil {
		return
	}
	waitDone(ctx, ch)
}

// waitDone waits, up to orderWait, for ch to close (a nil ch is closed).
func waitDone(ctx context.Context, ch <-chan struct{}) {
	if ch == nil {
		return
	}
	t := time.NewTimer(orderWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// storeChat stores a chat's items into conversation conv after prev, the
// write before it, then records the answer (the last item) as it
// streams. enroll has counted it; done ends its place in pending.
func (s *Service) storeChat(prev <-chan struct{}, done func(), g *gen.Generation, owner, conv string, items []sluice.Item) {
	waitDone(s.ctx, prev)
	err := s.addItems(conv, items)
	done()
	if err != nil {
		msg := items[len(items)-1].ID
		s.log.Error("conversations: gave up storing a chat's messages; its answer streams on, unstored",
			"conversation", conv, "message", msg, "stream", g.ID, "err", err)
		s.obs.Recorded(RecordedNotStored)
		s.unenroll()
		return
	}
	s.changed(context.Background(), owner, conv)
	s.record(g, owner, conv, items[len(items)-1].ID)
}

// addItems stores a chat's items, trying again while the database fails
// as a recorder's end does (endAttempts, waits doubling from WriteRetry),
// and once more when the service stops waiting. The items carry
// their IDs, so a try that stored them although it seemed to fail shows
// as ECONFLICT on the next: that is success.
func (s *Service) addItems(conv string, items []sluice.Item) error {
	wait := s.opts.WriteRetry
	var err error
	for attempt := 1; attempt <= endAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		_, err = s.store.AddItems(ctx, conv, items)
		cancel()
		switch code := sluice.ErrorCode(err); {
		case err == nil:
			return nil
		case code == sluice.ECONFLICT && attempt > 1:
			return nil
		case code != sluice.EUNAVAILABLE && code != sluice.EINTERNAL:
			return err // the conversation went, or a parent: trying again changes nothing
		}
		if attempt == 1 {
			s.log.Warn("conversations: cannot store a chat's messages; trying again", "conversation", conv, "err", err)
		}
		if attempt == endAttempts {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done(): // shutdown gave up waiting: one last try
			t.Stop()
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			defer cancel()
			if _, err = s.store.AddItems(ctx, conv, items); err == nil || sluice.ErrorCode(err) == sluice.ECONFLICT {
				return nil
			}
			return err
		}
		wait *= 2
	}
	return err
}

// fromStreams puts into each answer of branch still in progress the whole
// text of its stream, while the stream's log holds it: the stored text
// is only the last batch, and may lag the stream's end by the recorder's
// last write (much more on a loaded database). When the answer's recorder
// runs on this node, the text it has taken so far is used and only what
// follows is read: a long answer is not decoded twice.
func (s *Service) fromStreams(ctx context.Context, branch []sluice.Item) {
	for i := range branch {
		it := &branch[i]
		if it.Role != "assistant" || it.Status != sluice.StatusInProgress || it.StreamID == "" || s.logs == nil {
			continue
		}
		head, after := "", ""
		if r := s.recorderOf(it.StreamID); r != nil {
			var whole bool
			if head, after, whole = r.snapshot(); !whole {
				continue // the recorder missed events: the stored text is what there is
			}
		}
		if text, ok := s.streamText(ctx, it.StreamID, after); ok {
			it.Text = head + text
		}
	}
}

// following notes r as the recorder of stream id on this node (nil: none
// any more).
func (s *Service) following(id string, r *recorder) {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	if r == nil {
		delete(s.recs, id)
	} else {
		s.recs[id] = r
	}
}

func (s *Service) recorderOf(id string) *recorder {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	return s.recs[id]
}

// streamText reads the text of stream id from its log after event after
// ("": the whole), and reports false when it cannot: the log is gone
// (expired, or never on this store), failed, or does not hold every event
// from there.
func (s *Service) streamText(ctx context.Context, id, after string) (string, bool) {
	l, err := s.logs.Open(ctx, gen.LogName(id), false, sluice.LogOptions{})
	if err != nil {
		return "", false
	}
	var co wire.Collector
	buf := make([]sluice.Event, 0, 256)
	for {
		evs, err := l.Poll(ctx, after, buf)
		if err != nil && !errors.Is(err, io.EOF) {
			s.log.Warn("conversations: cannot read an answer's stream; answering from its stored text", "stream", id, "err", err)
			return "", false
		}
		for _, ev := range evs {
			after = ev.ID
			switch {
			case ev.Name == sluice.GapEvent:
				return "", false // not whole
			case ev.End != sluice.EndNone:
				return collected(&co), true
			case ev.Name == "":
				_ = co.Add(ev.Data) // a chunk that does not decode adds nothing
			}
		}
		if len(evs) == 0 || err != nil {
			return collected(&co), true // the answer so far: it still streams
		}
	}
}

// collected is the text co holds, as a store keeps text: a NUL that a
// model sent (JSON allows it, the stores do not) is kept as U+FFFD, so
// that one odd token cannot cost the whole answer.
func collected(co *wire.Collector) string {
	c := co.Completion().Choices[0].Message.Content
	if c == nil {
		return ""
	}
	return strings.ReplaceAll(*c, "\x00", "\uFFFD")
}
