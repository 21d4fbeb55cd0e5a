package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"potluck/agentproto"
	"potluck/core/autoscale"
	"potluck/core/fsm"
	"potluck/core/scaler"
	"potluck/core/series"
)

// Autoscaler is the leader's autoscaler as the API uses it: the metrics
// the agents report, the series they fill and the decisions made on them.
// It lives on the leader only, so its reads are leader reads (a ?stale
// read on a follower finds it empty).
type Autoscaler interface {
	// Report takes an agent's metrics report (on the leader).
	Report(ctx context.Context, hostID string, m agentproto.MetricsReport) error
	Step() time.Duration
	Points(name string) []series.Point
	Recent(name string) []scaler.Decision
}

// Defaults of PUT /v1/installations/{name}/autoscale for fields never set.
const (
	DefaultCPUTarget = 0.75 // the seed's rule 1
)

func (s *Server) autoscaleRoutes(op, w func(http.HandlerFunc) http.HandlerFunc) {
	s.mux.HandleFunc("GET /v1/installations/{name}/metrics", op(s.getMetrics))
	s.mux.HandleFunc("GET /v1/installations/{name}/autoscale", op(s.getAutoscale))
	s.mux.HandleFunc("PUT /v1/installations/{name}/autoscale", w(s.putAutoscale))
	s.mux.HandleFunc("POST /v1/internal/metrics", w(s.internalMetrics))
}

// MetricsView answers GET /v1/installations/{name}/metrics.
type MetricsView struct {
	Installation string         `json:"installation"`
	StepSeconds  float64        `json:"step_seconds"`
	Points       []series.Point `json:"points"`
}

func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if s.installation(w, s.node.State(), name) == nil {
		return
	}
	if s.cfg.Autoscaler == nil {
		writeError(w, http.StatusNotImplemented, "this node keeps no metrics")
		return
	}
	writeJSON(w, http.StatusOK, MetricsView{Installation: name, StepSeconds: s.cfg.Autoscaler.Step().Seconds(), Points: s.cfg.Autoscaler.Points(name)})
}

// AutoscaleView answers GET and PUT /v1/installations/{name}/autoscale.
type AutoscaleView struct {
	Installation string `json:"installation"`
	// Backs is the number of instances asked for now.
	Backs int `json:"backs"`
	// Policy is the installation's settings (the defaults, off, if never
	// set); Interval is also given as text.
	Policy       fsm.Autoscale `json:"policy"`
	IntervalText string        `json:"interval_text"`
	// Events are the operations in the replicated record, oldest first.
	Events []fsm.AutoscaleEvent `json:"events"`
	// Decisions are the leader's latest decisions, holds included, oldest
	// first (in memory: a new leader starts a new list).
	Decisions []scaler.Decision `json:"decisions"`
}

func (s *Server) autoscaleView(st *fsm.State, inst *fsm.Installation) AutoscaleView {
	v := AutoscaleView{Installation: inst.Name, Backs: inst.Backs, Events: []fsm.AutoscaleEvent{}, Decisions: []scaler.Decision{}}
	v.Policy = policyOf(inst)
	v.Events = append(v.Events, v.Policy.Events...)
	v.Policy.Events = nil
	v.IntervalText = v.Policy.Interval.String()
	if s.cfg.Autoscaler != nil && s.node.IsLeader() {
		v.Decisions = s.cfg.Autoscaler.Recent(inst.Name)
	}
	return v
}

// defaultAutoscale is the policy of an installation that never set one:
// off, the current count as both bounds, the seed's target and interval.
func defaultAutoscale(inst *fsm.Installation) fsm.Autoscale {
	n := max(inst.Backs, 1)
	return fsm.Autoscale{Policy: fsm.AutoscaleCombined, Min: n, Max: n, CPUTarget: DefaultCPUTarget, Interval: autoscale.DefaultMinInterval}
}

// policyOf is the installation's autoscale settings, the defaults if it
// never set any.
func policyOf(inst *fsm.Installation) fsm.Autoscale {
	if inst.Autoscale != nil {
		return *inst.Autoscale
	}
	return defaultAutoscale(inst)
}

func (s *Server) getAutoscale(w http.ResponseWriter, r *http.Request) {
	st := s.node.State()
	inst := s.installation(w, st, r.PathValue("name"))
	if inst == nil {
		return
	}
	writeJSON(w, http.StatusOK, s.autoscaleView(st, inst))
}

// AutoscaleRequest is the body of PUT /v1/installations/{name}/autoscale.
// Fields left out keep their current value (the defaults if never set);
// Interval is a Go duration ("25m", "90s").
type AutoscaleRequest struct {
	Enabled   *bool    `json:"enabled"`
	Policy    *string  `json:"policy"`
	Min       *int     `json:"min"`
	Max       *int     `json:"max"`
	CPUTarget *float64 `json:"cpu_target"`
	Interval  *string  `json:"interval"`
}

// merge returns cur with the request's fields set, or a message for a
// field that cannot be read.
func (req AutoscaleRequest) merge(cur fsm.Autoscale) (fsm.Autoscale, error) {
	if req.Enabled != nil {
		cur.Enabled = *req.Enabled
	}
	if req.Policy != nil {
		cur.Policy = *req.Policy
	}
	if req.Min != nil {
		cur.Min = *req.Min
	}
	if req.Max != nil {
		cur.Max = *req.Max
	}
	if req.CPUTarget != nil {
		cur.CPUTarget = *req.CPUTarget
	}
	if req.Interval != nil {
		d, err := time.ParseDuration(*req.Interval)
		if err != nil {
			return cur, fmt.Errorf("interval %q: want a duration such as 25m or 90s", *req.Interval)
		}
		cur.Interval = d
	}
	cur.Events, cur.LastOperation = nil, time.Time{}
	return cur, nil
}

func (s *Server) putAutoscale(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req AutoscaleRequest
	if !s.decode(w, r, &req) {
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		inst := st.Installations[name]
		if inst == nil {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no installation %q", name)}
		}
		a, err := req.merge(policyOf(inst))
		if err != nil {
			return nil, &fsm.Error{Code: fsm.CodeInvalid, Message: err.Error()}
		}
		if err := a.Check(); err != nil {
			return nil, err
		}
		return &fsm.Command{Type: fsm.CmdSetAutoscale, Name: name, Autoscale: &a}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.State()
	inst := st.Installations[name]
	if inst == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("installation %q was deleted meanwhile", name))
		return
	}
	writeJSON(w, http.StatusOK, s.autoscaleView(st, inst))
}

// MetricsRequest is a metrics report a follower received from an agent.
type MetricsRequest struct {
	HostID string                   `json:"host_id"`
	Report agentproto.MetricsReport `json:"report"`
}

func (s *Server) internalMetrics(w http.ResponseWriter, r *http.Request) {
	var req MetricsRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := req.Report.Check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.cfg.Autoscaler == nil {
		writeError(w, http.StatusNotImplemented, "metrics are not kept by this node")
		return
	}
	if err := s.cfg.Autoscaler.Report(r.Context(), req.HostID, req.Report); err != nil {
		writeError(w, statusOrUnavailable(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
