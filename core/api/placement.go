package api

import (
	"net/http"
	"time"

	"potluck/core/fsm"
	"potluck/core/scheduler"
)

// PlacementPolicyView is the cluster's placement policy: how Backs are
// chosen for installations that name none (see docs/architecture.md).
type PlacementPolicyView struct {
	Policy string `json:"policy"` // scheduler.PolicySpread or scheduler.PolicyPack
}

type placementPolicyRequest struct {
	Policy string `json:"policy"`
}

func (s *Server) getPlacementPolicy(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, placementPolicyView(s.node.State()))
}

func placementPolicyView(st *fsm.State) PlacementPolicyView {
	p := st.PlacementPolicy
	if p == "" {
		p = scheduler.PolicySpread
	}
	return PlacementPolicyView{Policy: p}
}

func (s *Server) setPlacementPolicy(w http.ResponseWriter, r *http.Request) {
	var req placementPolicyRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := scheduler.ValidatePolicy(req.Policy); err != nil || req.Policy == "" {
		writeError(w, http.StatusBadRequest, "policy must be spread or pack")
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdSetPlacementPolicy, Name: req.Policy}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.log.Info("placement policy set", "policy", req.Policy)
	writeJSON(w, http.StatusOK, placementPolicyView(s.node.State()))
}
