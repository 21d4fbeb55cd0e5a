// Package scaler is the leader's autoscaler: once a step (a minute by
// default) it runs core/autoscale's decision code for every installation
// whose autoscaling is on, over that installation's time series
// (core/series), and commits the operations it decides as plans through
// raft, each with its reason (fsm.CmdAutoscale). Scale-out places new
// instances like a manual scale; scale-in drains: the instances chosen
// leave the Fronts' routes at once and the reconciler stops them after
// the drain time, as after a rollout. Every decision, operations and holds
// alike, is kept in memory for GET /v1/installations/NAME/autoscale;
// operations also in the replicated state.
package scaler

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"potluck/core/autoscale"
	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/scheduler"
	"potluck/core/series"
)

// MaxRecent is how many decisions are kept in memory per installation.
const MaxRecent = 100

// Node is what the scaler needs of its core node (reconcile.Node has it).
type Node interface {
	IsLeader() bool
	State() *fsm.State
	Decide(ctx context.Context, requestID string, build cluster.Builder) (fsm.Result, error)
}

// Config wires a Scaler.
type Config struct {
	Node   Node
	Series *series.Store
	Logger *slog.Logger
	// Now is the clock decisions are made by (nil: time.Now).
	Now func() time.Time
	// Settle is how long after an instance started running no decision is
	// made (0: DefaultSettle or one step, whichever is longer). Its first
	// seconds do not show the load it will carry: the Fronts' mesh session
	// to a Back new to them may still be coming up (WireGuard retries a
	// handshake after 5 s), and meanwhile requests wait, so every instance
	// reads idle.
	Settle time.Duration
}

// DefaultSettle is Config.Settle's floor.
const DefaultSettle = 10 * time.Second

// Decision is one decision as the API shows it.
type Decision struct {
	At       time.Time `json:"at"`
	From     int       `json:"from"`
	To       int       `json:"to"`
	Source   string    `json:"source"`
	Reason   string    `json:"reason"`
	Forecast float64   `json:"forecast,omitempty"`
	// Applied is false for an operation that could not be committed (the
	// reason says why) and for decisions that hold.
	Applied bool `json:"applied"`
}

// Scaler runs on every core node and acts only on the leader.
type Scaler struct {
	cfg Config

	mu      sync.Mutex
	leading bool
	ctrl    map[string]*controller
	recent  map[string][]Decision
	// failing is the error of an installation's last operation that
	// could not be applied, logged when it first appears, not every step.
	failing map[string]string
}

type controller struct {
	key settingsKey
	c   *autoscale.Controller
}

// settingsKey is what a controller is built from.
type settingsKey struct {
	enabled   bool
	policy    string
	min, max  int
	cpuTarget float64
	interval  time.Duration
	milliCPU  int64
	memoryMB  int64
}

// New returns a scaler.
func New(cfg Config) *Scaler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Settle == 0 {
		cfg.Settle = max(DefaultSettle, cfg.Series.Step())
	}
	return &Scaler{cfg: cfg, ctrl: map[string]*controller{}, recent: map[string][]Decision{}, failing: map[string]string{}}
}

// Run decides once a step until ctx ends.
func (s *Scaler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Series.Step())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Tick(ctx)
		}
	}
}

// Recent returns the decisions kept for an installation, oldest first.
func (s *Scaler) Recent(name string) []Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Decision{}, s.recent[name]...)
}

// Tick makes one round of decisions (on the leader; elsewhere it forgets
// what it held, since a new leader rebuilds from the replicated record).
func (s *Scaler) Tick(ctx context.Context) {
	leader := s.cfg.Node.IsLeader()
	s.mu.Lock()
	if !leader {
		if s.leading {
			s.ctrl, s.recent, s.failing = map[string]*controller{}, map[string][]Decision{}, map[string]string{}
			s.cfg.Series.Reset()
		}
		s.leading = false
		s.mu.Unlock()
		return
	}
	s.leading = true
	s.mu.Unlock()
	st := s.cfg.Node.State()
	s.cfg.Series.Forget(func(name string) bool { return st.Installations[name] != nil })
	s.mu.Lock()
	for name := range s.recent {
		if in := st.Installations[name]; in == nil || in.Autoscale == nil || !in.Autoscale.Enabled {
			delete(s.ctrl, name) // rebuilt from the record when turned on again
		}
		if st.Installations[name] == nil {
			delete(s.recent, name)
			delete(s.failing, name)
		}
	}
	s.mu.Unlock()
	var of map[string][]*fsm.Instance // grouped once, only if some installation scales
	for _, inst := range st.SortedInstallations() {
		if a := inst.Autoscale; a != nil && a.Enabled && !inst.Deleting {
			if of == nil {
				of = st.InstancesByInstallation()
			}
			s.decide(ctx, inst, of[inst.Name])
		}
	}
}

// decide runs the installation's controller on its series and commits an
// operation; instances are the installation's.
func (s *Scaler) decide(ctx context.Context, inst *fsm.Installation, instances []*fsm.Instance) {
	now := s.cfg.Now()
	name := inst.Name
	c, err := s.controllerFor(inst)
	if err != nil {
		s.record(name, Decision{At: now, From: inst.Backs, To: inst.Backs, Source: "error", Reason: err.Error()})
		return
	}
	cur := autoscale.State{Count: inst.Backs}
	inBounds := inst.Backs >= inst.Autoscale.Min && inst.Backs <= inst.Autoscale.Max
	settle := s.cfg.Settle
	if !inBounds {
		settle = 0 // bounds the operator set apply at once
	}
	if why := busy(inst, instances, now, settle); why != "" {
		s.record(name, Decision{At: now, From: inst.Backs, To: inst.Backs, Source: string(autoscale.SourceHold), Reason: "held: " + why})
		return
	}
	history := Samples(s.cfg.Series.Points(name))
	lastStep := now.Truncate(s.cfg.Series.Step()).Add(-s.cfg.Series.Step())
	if inBounds && (len(history) == 0 || history[len(history)-1].At.Before(lastStep)) {
		s.record(name, Decision{At: now, From: inst.Backs, To: inst.Backs, Source: string(autoscale.SourceHold),
			Reason: "held: no metrics from the instances in the last step"})
		return
	}
	d := c.c.Step(now, cur, history)
	dec := Decision{At: now, From: d.From.Count, To: d.To.Count, Source: string(d.Source), Reason: d.Reason, Forecast: d.Forecast}
	if !d.Changed() {
		s.record(name, dec)
		return
	}
	if err := s.commit(ctx, name, dec); err != nil {
		s.mu.Lock()
		delete(s.ctrl, name) // its last operation did not happen
		s.mu.Unlock()
		dec.Reason = fmt.Sprintf("%s; not applied: %v", dec.Reason, err)
		s.record(name, dec)
		s.mu.Lock()
		first := s.failing[name] != err.Error()
		s.failing[name] = err.Error()
		s.mu.Unlock()
		if first {
			s.cfg.Logger.Warn("autoscale operation not applied", "installation", name, "from", dec.From, "to", dec.To, "err", err)
		}
		return
	}
	s.mu.Lock()
	delete(s.failing, name)
	s.mu.Unlock()
	dec.Applied = true
	s.record(name, dec)
	s.cfg.Logger.Info("autoscaled", "installation", name, "from", dec.From, "to", dec.To, "source", dec.Source, "reason", dec.Reason)
}

// commit builds the operation's plan from the leader's current state and
// commits it with its record.
func (s *Scaler) commit(ctx context.Context, name string, d Decision) error {
	res, err := s.cfg.Node.Decide(ctx, "", func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		inst := st.Installations[name]
		if inst == nil || inst.Autoscale == nil || !inst.Autoscale.Enabled {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: "autoscaling was turned off"}
		}
		if inst.Backs != d.From {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("the count changed to %d meanwhile", inst.Backs)}
		}
		if why := busy(inst, st.InstancesOf(inst.Name), now, 0); why != "" {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: why}
		}
		plan, err := Plan(st, inst, d.To, s.cfg.Series)
		if err != nil {
			return nil, err
		}
		return &fsm.Command{Type: fsm.CmdAutoscale, Name: name, Plan: plan,
			AutoscaleEvent: &fsm.AutoscaleEvent{At: d.At, From: d.From, To: d.To, Source: d.Source, Reason: d.Reason}}, nil
	})
	if err != nil {
		return err
	}
	return res.Err
}

// Plan is the plan that takes inst to backs instances: new ones placed as
// a manual scale places them, or, to scale in, instances that serve
// nothing (lost, failed, pending) removed first and running ones set
// draining (they leave the routes now and stop after the drain time).
// usage ranks Backs for new instances under pack (nil: reservations).
func Plan(st *fsm.State, inst *fsm.Installation, backs int, usage scheduler.Usage) (*fsm.Plan, error) {
	if backs >= inst.Backs {
		return scheduler.PlanScale(st, inst.Name, inst.Fronts, backs, scheduler.NewInstanceID, scheduler.Measured(st, usage)...)
	}
	var live []*fsm.Instance
	for _, in := range st.InstancesOf(inst.Name) {
		if in.State != fsm.InstanceDraining {
			live = append(live, in)
		}
	}
	rank := scheduler.RemovalRank
	// The newest go first among equals: the oldest have proved themselves.
	sort.SliceStable(live, func(i, j int) bool {
		if ri, rj := rank(live[i]), rank(live[j]); ri != rj {
			return ri > rj
		}
		return live[i].CreatedAt.After(live[j].CreatedAt)
	})
	plan := &fsm.Plan{Installations: []fsm.InstallationUpdate{{Name: inst.Name, Fronts: inst.Fronts, Backs: backs, FrontHosts: inst.FrontHosts}}}
	for _, in := range live[:max(0, len(live)-backs)] {
		if in.State == fsm.InstanceRunning {
			plan.Update = append(plan.Update, fsm.InstanceUpdate{ID: in.ID, State: fsm.InstanceDraining, Message: "autoscaled in: draining"})
		} else {
			plan.Remove = append(plan.Remove, in.ID)
		}
	}
	return plan, nil
}

// busy says why an installation, with its instances, must not be scaled
// now, or "": a rollout, instances starting or draining, or one that
// started running less than settle before now.
func busy(inst *fsm.Installation, instances []*fsm.Instance, now time.Time, settle time.Duration) string {
	if d := inst.Deploying(); d != nil {
		return fmt.Sprintf("release %d is rolling out", d.Version)
	}
	for _, in := range instances {
		switch in.State {
		case fsm.InstanceDraining:
			return "instances are draining"
		case fsm.InstancePending:
			return "instances are starting"
		case fsm.InstanceRunning:
			if since := now.Sub(in.UpdatedAt); since < settle {
				return fmt.Sprintf("instance %s started running %v ago; its load settles for %v", in.ID, since.Round(time.Second), settle)
			}
		}
	}
	return ""
}

// record keeps a decision. Holds that repeat the previous decision (same
// source and counts) replace it rather than pile up, so the record keeps
// the changes, not one line a minute.
func (s *Scaler) record(name string, d Decision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recent[name]
	if n := len(r); n > 0 && d.From == d.To && r[n-1].From == r[n-1].To && r[n-1].Source == d.Source && r[n-1].To == d.To {
		r[n-1] = d
		return
	}
	r = append(r, d)
	if len(r) > MaxRecent {
		r = append([]Decision(nil), r[len(r)-MaxRecent:]...)
	}
	s.recent[name] = r
}

// controllerFor returns the installation's controller, built again when
// its settings or its instance size changed.
func (s *Scaler) controllerFor(inst *fsm.Installation) (*controller, error) {
	a := inst.Autoscale
	key := settingsKey{a.Enabled, a.Policy, a.Min, a.Max, a.CPUTarget, a.Interval, inst.PerInstance.MilliCPU, inst.PerInstance.MemoryMB}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.ctrl[inst.Name]; c != nil && c.key == key {
		return c, nil
	}
	p, ladder, bounds := Policy(inst, s.cfg.Series.Step())
	ac, err := autoscale.NewController(p, ladder, bounds, inst.Autoscale.Interval, inst.Autoscale.LastOperation)
	if err != nil {
		return nil, err
	}
	c := &controller{key: key, c: ac}
	s.ctrl[inst.Name] = c
	return c, nil
}
