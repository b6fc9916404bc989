package api

import (
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

func (s *Server) handleCreateConversation(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	var in convo.CreateInput
	// An empty body is an empty conversation, as OpenAI takes it.
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &in); err != nil && !emptyBody(err) {
			writeError(w, r, s.log, err)
			return
		}
	}
	c, _, err := svc.Create(r.Context(), pass.Caller().Key, in)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ConversationOf(c))
}

func (s *Server) handleListConversations(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, err := queryInt(q.Get("limit"), "limit")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	cs, more, err := svc.List(r.Context(), pass.Caller().Key, convo.ListInput{Limit: limit, After: q.Get("after"), Search: q.Get("q")})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ConversationList(cs, more))
}

func (s *Server) handleGetConversation(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	c, err := svc.Get(r.Context(), pass.Caller().Key, r.PathValue("id"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ConversationOf(c))
}

func (s *Server) handleUpdateConversation(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	var in convo.PatchInput
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	c, err := svc.Update(r.Context(), pass.Caller().Key, r.PathValue("id"), in)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ConversationOf(c))
}

func (s *Server) handleDeleteConversation(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if err := svc.Delete(r.Context(), pass.Caller().Key, id); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Deleted{ID: id, Object: "conversation.deleted", Deleted: true})
}

func (s *Server) handleListItems(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, err := queryInt(q.Get("limit"), "limit")
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	page := convo.ItemsPage{Limit: limit, After: q.Get("after")}
	switch q.Get("order") {
	case "", "desc":
	case "asc":
		page.Asc = true
	default:
		writeError(w, r, s.log, &sluice.Error{Code: sluice.EINVALID, Param: "order", Kind: "invalid_value",
			Message: "Invalid value for 'order': expected asc or desc."})
		return
	}
	items, more, err := svc.Items(r.Context(), pass.Caller().Key, r.PathValue("id"), page)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ItemList(items, more))
}

func (s *Server) handleAddItems(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	var in convo.ItemsInput
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &in); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	items, err := svc.AddItems(r.Context(), pass.Caller().Key, r.PathValue("id"), in)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ItemList(items, false))
}

func (s *Server) handleGetItem(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	it, err := svc.Item(r.Context(), pass.Caller().Key, r.PathValue("id"), r.PathValue("item"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ItemOf(it))
}

func (s *Server) handleDeleteItem(w http.ResponseWriter, r *http.Request) {
	svc, pass, ok := s.conversations(w, r)
	if !ok {
		return
	}
	c, err := svc.DeleteItem(r.Context(), pass.Caller().Key, r.PathValue("id"), r.PathValue("item"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ConversationOf(c))
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
// just after Last-Event-ID when given, else from now on.
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
	after := lastEventID(r)
	resumed := after != ""
	if !resumed {
		if after, _, err = l.Last(r.Context()); err != nil {
			release()
			writeError(w, r, s.log, err)
			return
		}
	}
	if !s.checkAfter(w, r, l, after, resumed) {
		release()
		return
	}
	w.Header().Set(HeaderLastEventID, after)
	s.stream(w, r, l, after, streamOptions{stop: s.drainCtx, topic: true, release: release})
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
