package convo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/wire"
)

// The change feed of an owner is a ring log in the node's log store, so
// that an event published on one node reaches the tabs and devices that
// follow it on any other (through Redis), and a follower resumes from its
// Last-Event-ID as from any topic's. It carries what changed, not the
// change: a follower reads the conversation again.

// FeedLen is how many events a change feed keeps for followers that
// resume.
const FeedLen = 256

// feedTimeout bounds a publish, so that a store that does not answer
// delays no request for long; the event is then lost, and a follower
// refreshes on its next event or focus.
const feedTimeout = 2 * time.Second

// feedName is the log of owner's feed. The owner is hex-encoded: key
// names are the operator's and may hold any character.
func feedName(owner string) string { return "conversations/k" + hex.EncodeToString([]byte(owner)) }

func feedOptions(owner string) sluice.LogOptions {
	return sluice.LogOptions{Ring: true, MaxLen: FeedLen, Owner: owner}
}

// Feed returns owner's change feed, to read from as from a topic, or
// ENOTFOUND when the service has no log store to keep feeds in.
func (s *Service) Feed(ctx context.Context, owner string) (sluice.Log, error) {
	if s.logs == nil {
		return nil, &sluice.Error{Code: sluice.ENOTFOUND, Kind: "no_feed", Message: "This server keeps no change feed of conversations."}
	}
	return s.logs.Open(ctx, feedName(owner), true, feedOptions(owner))
}

// publish appends a change of c to owner's feed. Failures are logged: the
// change is stored, and the feed is only a hint to refresh.
func (s *Service) publish(owner, typ string, c sluice.Conversation) {
	if s.logs == nil {
		return
	}
	data, _ := json.Marshal(wire.ConversationEvent{Type: typ, ID: c.ID, UpdatedAt: c.UpdatedAt.Unix()}) // strings and a number
	ctx, cancel := context.WithTimeout(context.Background(), feedTimeout)
	defer cancel()
	l, err := s.logs.Open(ctx, feedName(owner), true, feedOptions(owner))
	if err == nil {
		_, err = l.Append(ctx, sluice.Event{Data: data})
	}
	if err != nil {
		s.log.Warn("conversations: cannot tell the change feed", "type", typ, "conversation", c.ID, "err", err)
	}
}
