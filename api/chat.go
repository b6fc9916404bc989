package api

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/gen"
	"github.com/sluice-dev/sluice/wire"
)

// Headers of Sluice's own.
const (
	// HeaderStreamID names the stream of a chat completion, for resume.
	HeaderStreamID = "Sluice-Stream-ID"
	// HeaderConversationID and HeaderMessageID, on the answer to a chat
	// that continues a conversation, name the conversation and the
	// assistant message the answer is stored in.
	HeaderConversationID = "Sluice-Conversation-ID"
	HeaderMessageID      = "Sluice-Message-ID"
	// HeaderCancelOnDisconnect, when "true" or "1" on a chat completion
	// request, stops the generation when its first reader goes away
	// instead of letting it finish for a later resume.
	HeaderCancelOnDisconnect = "Sluice-Cancel-On-Disconnect"
)

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	pass, ok := s.enter(w, r)
	if !ok {
		return
	}
	body, err := readBody(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	req, model, err := pass.Chat(body)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	var release func()
	if req.Stream {
		if release, ok = s.openStream(w, r, pass.Caller()); !ok {
			return
		}
	} else {
		req.IncludeUsage = true // a chat.completion always reports usage
	}
	g, err := pass.Start(r.Context(), s.runner, req, model)
	if err != nil {
		if release != nil {
			release()
		}
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set(HeaderStreamID, g.ID)
	if g.ConversationID != "" {
		w.Header().Set(HeaderConversationID, g.ConversationID)
		w.Header().Set(HeaderMessageID, g.MessageID)
	}
	var onGone func()
	if v := strings.ToLower(r.Header.Get(HeaderCancelOnDisconnect)); v == "1" || v == "true" {
		onGone = func() { s.runner.Cancel(g.ID) }
	}
	if req.Stream {
		s.stream(w, r, g.Log, "", streamOptions{onGone: onGone, release: release})
		return
	}
	s.complete(w, r, g.Generation, onGone)
}

// complete answers a stream:false request: it reads the generation's log to
// its end and sends the collected chat.completion object.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, g *gen.Generation, onGone func()) {
	var co wire.Collector
	events := make([]sluice.Event, 0, readBatch)
	after := ""
	for {
		var err error
		events, err = g.Log.Read(r.Context(), after, events)
		for _, ev := range events {
			after = ev.ID
			if ev.End == sluice.EndNone {
				if cerr := co.Add(ev.Data); cerr != nil {
					writeError(w, r, s.log, cerr)
					return
				}
				continue
			}
			if ev.End != sluice.EndDone {
				<-g.Done()
				writeRaw(w, wire.Status(g.Err()), ev.Data)
				return
			}
			writeJSON(w, http.StatusOK, co.Completion())
			return
		}
		if errors.Is(err, io.EOF) {
			// Only an ending event ends an answer: a store that reports the
			// end without one (the Redis store can, as it loses its server)
			// must not pass an empty or cut answer off as complete.
			err = errNoEnd
		}
		if err != nil {
			if r.Context().Err() == nil {
				writeError(w, r, s.log, err) // the store failed: nothing was written yet
			} else if onGone != nil {
				onGone()
			}
			return
		}
	}
}

// errNoEnd answers a log that ended without its ending event.
var errNoEnd = &sluice.Error{Code: sluice.EUNAVAILABLE, Kind: "store_unavailable",
	Message: "The answer's log ended without its last event; the log store may have failed. Try again shortly."}

// openGeneration returns the log of the generation named in the path, if
// the caller may use it, and who the caller is.
func (s *Server) openGeneration(w http.ResponseWriter, r *http.Request) (sluice.Log, admit.Caller, bool) {
	pass, ok := s.enter(w, r)
	if !ok {
		return nil, admit.Caller{}, false
	}
	l, err := pass.Stream(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, r, s.log, err)
		return nil, admit.Caller{}, false
	}
	return l, pass.Caller(), true
}

func (s *Server) handleAttach(w http.ResponseWriter, r *http.Request) {
	l, c, ok := s.openGeneration(w, r)
	if !ok {
		return
	}
	after := lastEventID(r)
	release, ok := s.startStream(w, r, c, l, after)
	if !ok {
		return
	}
	w.Header().Set(HeaderStreamID, r.PathValue("id"))
	opts := streamOptions{release: release}
	if s.cfg.DrainReaders {
		opts.stop = s.drainCtx
	}
	s.stream(w, r, l, after, opts)
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	l, _, ok := s.openGeneration(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	end, err := s.runner.Stop(r.Context(), id, l)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "stream", "status": end.String()})
}

// lastEventID returns where a reader resumes: the Last-Event-ID header,
// else the last_event_id query parameter, else "" (from the start).
func lastEventID(r *http.Request) string {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return strings.TrimSpace(v)
	}
	return r.URL.Query().Get("last_event_id")
}
