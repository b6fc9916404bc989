package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/admit"
	"github.com/sluice-dev/sluice/convo"
	"github.com/sluice-dev/sluice/wire"
)

// The conversation routes follow OpenAI's Conversations API; the service
// (convo) checks ownership, bounds and input, and these handlers only
// carry requests and answers over HTTP. Each is admitted like every API
// route (a key when the server has keys, one unit of the rate budget).

func (s *Server) conversationRoutes() {
	s.mux.HandleFunc("POST /v1/conversations", s.handleCreateConversation)
	s.mux.HandleFunc("GET /v1/conversations", s.handleListConversations)
	s.mux.HandleFunc("GET /v1/conversations/events", s.handleConversationEvents)
	s.mux.HandleFunc("GET /v1/conversations/{id}", s.handleGetConversation)
	s.mux.HandleFunc("POST /v1/conversations/{id}", s.handleUpdateConversation)
	s.mux.HandleFunc("DELETE /v1/conversations/{id}", s.handleDeleteConversation)
	s.mux.HandleFunc("GET /v1/conversations/{id}/items", s.handleListItems)
	s.mux.HandleFunc("POST /v1/conversations/{id}/items", s.handleAddItems)
	s.mux.HandleFunc("GET /v1/conversations/{id}/items/{item}", s.handleGetItem)
	s.mux.HandleFunc("DELETE /v1/conversations/{id}/items/{item}", s.handleDeleteItem)
	s.mux.HandleFunc("GET /v1/conversations/{id}/export", s.handleExport)
}

var errConversationsOff = &sluice.Error{Code: sluice.ENOTFOUND, Kind: "conversations_off",
	Message: "This server keeps no conversations (it runs with --data-dir off)."}

// conversations admits r and returns the service and the caller; on
// refusal it has answered.
func (s *Server) conversations(w http.ResponseWriter, r *http.Request) (*convo.Service, *admit.Pass, bool) {
	pass, ok := s.enter(w, r)
	if !ok {
		return nil, nil, false
	}
	if s.cfg.Conversations == nil {
		writeError(w, r, s.log, errConversationsOff)
		return nil, nil, false
	}
	return s.cfg.Conversations, pass, true
}

// conversationCall admits r, runs call with the service and the caller's
// key, and answers what it returns as JSON, or its error through the one
// error table: every JSON route of a conversation is one call.
func (s *Server) conversationCall(w http.ResponseWriter, r *http.Request,
	call func(ctx context.Context, svc *convo.Service, key string) (any, error)) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	out, err := call(r.Context(), svc, pass.Caller().Key)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleCreateConversation(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		var in convo.CreateInput
		// An empty body is an empty conversation, as OpenAI takes it.
		if r.ContentLength != 0 {
			if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &in); err != nil && !emptyBody(err) {
				return nil, err
			}
		}
		c, _, err := svc.Create(ctx, key, in)
		if err != nil {
			return nil, err
		}
		return wire.ConversationOf(c), nil
	})
}

func (s *Server) handleListConversations(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		q := r.URL.Query()
		limit, err := queryInt(q.Get("limit"), "limit")
		if err != nil {
			return nil, err
		}
		cs, more, err := svc.List(ctx, key, convo.ListInput{Limit: limit, After: q.Get("after"), Search: q.Get("q")})
		if err != nil {
			return nil, err
		}
		return wire.ConversationList(cs, more), nil
	})
}

func (s *Server) handleGetConversation(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		c, err := svc.Get(ctx, key, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return wire.ConversationOf(c), nil
	})
}

func (s *Server) handleUpdateConversation(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		var in convo.PatchInput
		if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
			return nil, err
		}
		c, err := svc.Update(ctx, key, r.PathValue("id"), in)
		if err != nil {
			return nil, err
		}
		return wire.ConversationOf(c), nil
	})
}

func (s *Server) handleDeleteConversation(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		id := r.PathValue("id")
		if err := svc.Delete(ctx, key, id); err != nil {
			return nil, err
		}
		return wire.Deleted{ID: id, Object: "conversation.deleted", Deleted: true}, nil
	})
}

func (s *Server) handleListItems(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		q := r.URL.Query()
		limit, err := queryInt(q.Get("limit"), "limit")
		if err != nil {
			return nil, err
		}
		page := convo.ItemsPage{Limit: limit, After: q.Get("after")}
		switch q.Get("order") {
		case "", "desc":
		case "asc":
			page.Asc = true
		default:
			return nil, &sluice.Error{Code: sluice.EINVALID, Param: "order", Kind: "invalid_value",
				Message: "Invalid value for 'order': expected asc or desc."}
		}
		items, more, err := svc.Items(ctx, key, r.PathValue("id"), page)
		if err != nil {
			return nil, err
		}
		return wire.ItemList(items, more), nil
	})
}

func (s *Server) handleAddItems(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		var in convo.ItemsInput
		if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
			return nil, err
		}
		items, err := svc.AddItems(ctx, key, r.PathValue("id"), in)
		if err != nil {
			return nil, err
		}
		return wire.ItemList(items, false), nil
	})
}

func (s *Server) handleGetItem(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		it, err := svc.Item(ctx, key, r.PathValue("id"), r.PathValue("item"))
		if err != nil {
			return nil, err
		}
		return wire.ItemOf(it), nil
	})
}

func (s *Server) handleDeleteItem(w http.ResponseWriter, r *http.Request) {
	s.conversationCall(w, r, func(ctx context.Context, svc *convo.Service, key string) (any, error) {
		c, err := svc.DeleteItem(ctx, key, r.PathValue("id"), r.PathValue("item"))
		if err != nil {
			return nil, err
		}
		return wire.ConversationOf(c), nil
	})
}

func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	ex, err := svc.Export(r.Context(), pass.Caller().Key, r.PathValue("id"), r.URL.Query().Get("format"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", ex.ContentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+ex.Filename+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(ex.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ex.Body)
}

// handleConversationEvents streams the caller's change feed: an event
// for each conversation created, changed or deleted, from any node, from
// where followTopic says (as a topic's: ?from=start for every event it
// keeps).
func (s *Server) handleConversationEvents(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	release, ok := s.openStream(w, r, pass.Caller())
	if !ok {
		return
	}
	l, err := svc.Feed(r.Context(), pass.Caller().Key)
	if err != nil {
		release()
		writeError(w, r, s.log, err)
		return
	}
	s.followTopic(w, r, l, release)
}

// queryInt reads an integer query parameter; "" is 0.
func queryInt(v, param string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, &sluice.Error{Code: sluice.EINVALID, Param: param, Kind: "invalid_type",
			Message: "Invalid value for '" + param + "': expected an integer, got '" + clipQuery(v) + "'."}
	}
	return n, nil
}

func clipQuery(v string) string {
	if len(v) > 40 {
		return v[:40] + "…"
	}
	return v
}
