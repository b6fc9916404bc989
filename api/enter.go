package api

import (
	"net/http"

	"github.com/sluice-dev/sluice/admit"
)

// caller finds who sent r (admit.Gate.Identify). On a wrong key it has
// answered 401, and reports false.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (admit.Caller, bool) {
	c, err := s.gate.Identify(r.Header.Get("Authorization"), r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
	if a := accessOf(r); a != nil {
		a.key = c.Key
	}
	if err != nil {
		writeError(w, r, s.log, err)
		return c, false
	}
	return c, true
}

// enter admits r as one API operation (admit.Gate.Enter: a key when the
// server has keys, and one unit of the caller's rate budget). On refusal it
// has answered, and reports false.
func (s *Server) enter(w http.ResponseWriter, r *http.Request) (*admit.Pass, bool) {
	c, ok := s.caller(w, r)
	if !ok {
		return nil, false
	}
	p, err := s.gate.Enter(r.Context(), c)
	if err != nil {
		writeError(w, r, s.log, err)
		return nil, false
	}
	return p, true
}
