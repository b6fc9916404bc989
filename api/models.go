package api

import (
	"net/http"

	"github.com/sluice-dev/sluice"
	"github.com/sluice-dev/sluice/wire"
)

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.enter(w, r); !ok {
		return
	}
	writeJSON(w, http.StatusOK, wire.Models(s.gate.Models().List()))
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.enter(w, r); !ok {
		return
	}
	info, err := s.gate.Models().Info(r.PathValue("model"))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Models([]sluice.ModelInfo{info}).Data[0])
}
