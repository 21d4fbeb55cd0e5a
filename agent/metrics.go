package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"potluck/lb/metrics"
)

// counters are the agent's own metrics.
type counters struct {
	heartbeats, heartbeatFailures metrics.Counter
	stateFetches, stateFailures   metrics.Counter
	appliedIndex                  atomic.Uint64
}

// WriteMetrics writes the agent's and its mesh node's metrics.
func (a *Agent) WriteMetrics(w *metrics.Writer) {
	role := metrics.Labels("role", a.cfg.Role)
	w.Counter("potluck_agent_heartbeats_total", "Heartbeats delivered to the core.", role, a.stats.heartbeats.Load())
	w.Counter("potluck_agent_heartbeat_failures_total", "Heartbeats no core node accepted.", role, a.stats.heartbeatFailures.Load())
	w.Counter("potluck_agent_state_fetches_total", "Desired states received from the core.", role, a.stats.stateFetches.Load())
	w.Counter("potluck_agent_state_fetch_failures_total", "Failed attempts to fetch the desired state.", role, a.stats.stateFailures.Load())
	w.Gauge("potluck_agent_applied_index", "Raft index of the desired state applied last.", role, float64(a.stats.appliedIndex.Load()))
	st, err := a.node.Status()
	if err != nil {
		return
	}
	for _, p := range st {
		l := metrics.Labels("peer", p.Address.String())
		w.Counter("potluck_mesh_peer_rx_bytes_total", "Bytes received from a mesh peer.", l, p.RxBytes)
		w.Counter("potluck_mesh_peer_tx_bytes_total", "Bytes sent to a mesh peer.", l, p.TxBytes)
		age := -1.0
		if !p.LastHandshake.IsZero() {
			age = time.Since(p.LastHandshake).Seconds()
		}
		w.Gauge("potluck_mesh_peer_handshake_age_seconds", "Seconds since the last WireGuard handshake with a peer (-1: none yet).", l, age)
	}
}

// AdminHandler serves what every host agent shows on its admin listener:
// /healthz; /metrics with the agent's and mesh node's metrics followed by the
// role's own (extra); /status as JSON with the identity and mesh peers plus
// the role's own fields (status).
func (a *Agent) AdminHandler(extra func(*metrics.Writer), status func() map[string]any) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		mw := metrics.NewWriter(w)
		a.WriteMetrics(mw)
		extra(mw)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		doc := status()
		doc["identity"] = a.Identity()
		doc["peers"], _ = a.node.Status()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	})
	return mux
}
