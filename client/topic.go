package client

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"

	"github.com/sluice-dev/sluice/sse"
)

// GapEvent is the name of the event that tells a subscriber it could not
// have some events: see Event.Gap.
const GapEvent = "sluice.gap"

// headerStart is the response header in which Sluice names the event a
// subscription starts after, so that one cut before its first event can
// resume from there.
const headerStart = "Sluice-Last-Event-ID"

// Event is one event of a topic.
type Event struct {
	ID   string
	Name string // "" unless the publisher named it; GapEvent for a gap
	Data string // the data as published: JSON text for data that was not a string
}

// Gap is what a GapEvent says.
type Gap struct {
	// Reason is "trimmed" (the topic dropped events before they were read)
	// or "replaced" (the ID resumed from belongs to an earlier incarnation
	// of the topic, e.g. before a restart: what follows is all it holds).
	Reason  string `json:"reason"`
	Missed  uint64 `json:"missed"` // how many were trimmed away
	Message string `json:"message"`
}

// Gap returns what the event says if it is a GapEvent.
func (e Event) Gap() (Gap, bool) {
	var g Gap
	if e.Name != GapEvent || json.Unmarshal([]byte(e.Data), &g) != nil {
		return Gap{}, false
	}
	return g, true
}

// SubscribeOptions say where a subscription starts. With neither field set
// it gets the events published from the moment it is subscribed.
type SubscribeOptions struct {
	LastEventID string // the events after this one
	FromStart   bool   // every event the topic keeps, then new ones
}

// Subscription follows a topic for as long as it is open, across drops,
// restarts and server shutdowns. Make one with Client.Subscribe and read it
// with Events. Its methods are safe for concurrent use.
type Subscription struct {
	reading
	fromStart bool
}

// Subscribe subscribes to a topic and returns once the server has accepted
// the subscription: events published from then on are in it. ctx bounds
// the whole subscription. By default it never gives up reconnecting
// (RetryPolicy.MaxAttempts).
func (c *Client) Subscribe(ctx context.Context, topic string, o SubscribeOptions) (*Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{reading: reading{cancel: cancel, lastID: o.LastEventID}, fromStart: o.FromStart}
	path := "/v1/topics/" + url.PathEscape(topic) + "/events"
	request := func(ctx context.Context, after string) (*http.Request, error) {
		p := path
		if after == "" && s.fromStart {
			p += "?from=start"
		}
		r, err := c.newRequest(ctx, http.MethodGet, p, nil)
		if err == nil && after != "" {
			r.Header.Set("Last-Event-ID", after)
		}
		return r, err
	}
	s.f = &follower{
		c:      c,
		ctx:    ctx,
		policy: c.Retry.withDefaults(-1),
		first:  func(ctx context.Context) (*http.Request, error) { return request(ctx, o.LastEventID) },
		resume: request,
		isEnd:  func(sse.Event) bool { return false },
		lastID: o.LastEventID,
		onOpen: func(resp *http.Response) {
			// Where the server started this subscription: resume from there
			// if the connection drops before the first event.
			if v := resp.Header.Values(headerStart); len(v) > 0 && s.f.lastID == "" {
				if v[0] != "" {
					s.f.lastID = v[0]
				} else {
					s.fromStart = true // the topic was empty: all of it is new
				}
			}
		},
	}
	s.f.maxDelay = s.f.policy.MaxDelay
	if err := s.f.open(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Events returns the topic's events in order, reconnecting as needed. The
// sequence goes on until ctx is done (its last pair then holds ctx's error),
// Close is called (it then just ends), or the subscription fails: refused,
// or down for every attempt its retry policy allows. The network is read
// only as fast as the loop takes events: a loop too slow for a busy topic
// is dropped by the server and resumes where it was, missing nothing the
// topic still keeps (else it gets a GapEvent). Leaving the loop early
// closes the subscription. A Subscription can be ranged over once.
func (s *Subscription) Events() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		err := s.each(func(ev sse.Event) bool {
			return yield(Event{ID: ev.ID, Name: ev.Name, Data: ev.Data}, nil)
		})
		if err != nil {
			yield(Event{}, err)
		}
	}
}

// LastEventID returns the ID of the last event read: subscribe with it
// later to go on from there.
func (s *Subscription) LastEventID() string { return s.last() }

// Close ends the subscription. A range over Events that is under way ends
// without an error. Close is safe to call more than once.
func (s *Subscription) Close() error {
	s.close()
	return nil
}
