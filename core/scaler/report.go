package scaler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"potluck/agentproto"
	"potluck/core/fsm"
	"potluck/core/series"
)

// Report takes an agent's metrics report on the leader. Only what the host
// may speak for is kept: a Front's routes of installations it serves, a
// Back's instances placed on it; the rest is dropped silently (a report
// may cross a change of placement).
func (s *Scaler) Report(_ context.Context, hostID string, m agentproto.MetricsReport) error {
	if !s.cfg.Node.IsLeader() {
		return errors.New("metrics are kept by the leader, and this node no longer leads")
	}
	if err := m.Check(); err != nil {
		return &fsm.Error{Code: fsm.CodeInvalid, Message: err.Error()}
	}
	st := s.cfg.Node.State()
	h := st.Hosts[hostID]
	if h == nil {
		return &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no host %q", hostID)}
	}
	var routes []agentproto.RouteMetrics
	for _, r := range m.Routes {
		if inst := st.Installations[r.Installation]; inst != nil && h.Role == fsm.RoleFront && slices.Contains(inst.FrontHosts, hostID) {
			routes = append(routes, r)
		}
	}
	var instances []agentproto.InstanceMetrics
	for _, im := range m.Instances {
		if in := st.Instances[im.ID]; in != nil && in.HostID == hostID && in.Installation == im.Installation && in.State == fsm.InstanceRunning {
			instances = append(instances, im)
		}
	}
	s.cfg.Series.AddFront(routes)
	s.cfg.Series.AddBack(instances)
	return nil
}

// Step is the series' step.
func (s *Scaler) Step() time.Duration { return s.cfg.Series.Step() }

// Points is an installation's series.
func (s *Scaler) Points(name string) []series.Point { return s.cfg.Series.Points(name) }
