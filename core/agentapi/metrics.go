package agentapi

import (
	"context"
	"fmt"
	"net/http"

	"potluck/agentproto"
	"potluck/core/fsm"
	"potluck/internal/jsonhttp"
)

// maxMetricsBytes bounds a metrics report's body (MaxMetricsRoutes routes
// with their histograms fit).
const maxMetricsBytes = 1 << 20

// MetricsFunc delivers an agent's metrics report to the leader.
type MetricsFunc func(ctx context.Context, hostID string, m agentproto.MetricsReport) error

func (h *Handler) metrics(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	var m agentproto.MetricsReport
	if err := jsonhttp.Decode(w, r, &m, maxMetricsBytes); err != nil {
		jsonhttp.WriteError(w, jsonhttp.StatusOf(err), "metrics: "+jsonhttp.MessageOf(err))
		return
	}
	if err := m.Check(); err != nil {
		jsonhttp.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if h.cfg.Metrics != nil {
		if err := h.cfg.Metrics(r.Context(), host.ID, m); err != nil {
			jsonhttp.WriteError(w, deliveryStatus(err), fmt.Sprintf("metrics not recorded: %v", err))
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
