package fsm

import (
	"time"
)

// Autoscaling policies (Autoscale.Policy; "" is AutoscaleCombined). What
// they do is core/autoscale's.
const (
	AutoscaleCombined = "combined"
	AutoscaleReactive = "reactive"
	AutoscaleHPA      = "hpa"
)

// Limits of an autoscaling policy.
const (
	// MaxAutoscaleCount bounds Autoscale.Max.
	MaxAutoscaleCount = 100
	// MinCPUTarget keeps the target above the seed's scale-in threshold
	// (10 %), so the two rules cannot both fire.
	MinCPUTarget = 0.15
	// MaxAutoscaleInterval bounds the minimum interval between operations.
	MaxAutoscaleInterval = 24 * time.Hour
	// MaxAutoscaleEvents is how many decisions that scaled are kept.
	MaxAutoscaleEvents = 50
)

// Autoscale is an installation's autoscaling policy and the record of what
// the autoscaler did. It is replaced whole, never modified in place, so
// Clone may share it.
type Autoscale struct {
	Enabled bool   `json:"enabled"`
	Policy  string `json:"policy,omitempty"`
	// Min and Max bound the number of Back instances.
	Min int `json:"min"`
	Max int `json:"max"`
	// CPUTarget is the share of the instances' CPU limit the policy keeps
	// them under (the seed's rule 1 threshold, 0.75).
	CPUTarget float64 `json:"cpu_target"`
	// Interval is the least time between two scaling operations.
	Interval time.Duration `json:"interval"`
	// LastOperation is when the autoscaler last scaled; a new leader
	// keeps the interval from it.
	LastOperation time.Time `json:"last_operation,omitzero"`
	// Events are the latest operations, oldest first.
	Events []AutoscaleEvent `json:"events,omitempty"`
}

// AutoscaleEvent is one scaling operation and why it was made.
type AutoscaleEvent struct {
	At     time.Time `json:"at"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Source string    `json:"source"`
	Reason string    `json:"reason"`
}

// Check reports settings that cannot work.
func (a *Autoscale) Check() error {
	switch {
	case a.Policy != "" && a.Policy != AutoscaleCombined && a.Policy != AutoscaleReactive && a.Policy != AutoscaleHPA:
		return errf(CodeInvalid, "autoscale policy %q: use combined, reactive or hpa", a.Policy)
	case a.Min < 1 || a.Max < a.Min || a.Max > MaxAutoscaleCount:
		return errf(CodeInvalid, "autoscale bounds %d..%d: need 1 <= min <= max <= %d", a.Min, a.Max, MaxAutoscaleCount)
	case !(a.CPUTarget >= MinCPUTarget && a.CPUTarget <= 1):
		return errf(CodeInvalid, "autoscale CPU target %.2f: must be within %.2f..1", a.CPUTarget, MinCPUTarget)
	case a.Interval < 0 || a.Interval > MaxAutoscaleInterval:
		return errf(CodeInvalid, "autoscale interval %v: must be within 0..%v", a.Interval, MaxAutoscaleInterval)
	}
	return nil
}

// setAutoscale replaces an installation's policy settings (Command.Name,
// Command.Autoscale), keeping the record of operations.
func (s *State) setAutoscale(c *Command) (string, error) {
	inst := s.editInstallation(c.Name)
	if inst == nil {
		return "", errf(CodeNotFound, "no installation %q", c.Name)
	}
	if c.Autoscale == nil {
		return "", errf(CodeInvalid, "autoscale settings missing")
	}
	if err := c.Autoscale.Check(); err != nil {
		return "", err
	}
	a := *c.Autoscale
	a.LastOperation, a.Events = time.Time{}, nil
	if old := inst.Autoscale; old != nil {
		a.LastOperation, a.Events = old.LastOperation, old.Events
	}
	inst.Autoscale = &a
	inst.UpdatedAt = c.Time
	return c.Name, nil
}

// autoscale applies an autoscaler's operation: its plan (Command.Plan) and
// its record (Command.AutoscaleEvent), together or not at all.
func (s *State) autoscale(c *Command) (string, error) {
	inst := s.Installations[c.Name]
	if inst == nil {
		return "", errf(CodeNotFound, "no installation %q", c.Name)
	}
	if inst.Autoscale == nil || !inst.Autoscale.Enabled {
		return "", errf(CodeConflict, "autoscaling of %q is off", c.Name)
	}
	if err := refuseIfDeleting(inst); err != nil {
		return "", err
	}
	ev := c.AutoscaleEvent
	if ev == nil {
		return "", errf(CodeInvalid, "autoscale operation without its event")
	}
	if _, err := s.applyPlan(c); err != nil {
		return "", err
	}
	inst = s.editInstallation(c.Name) // after the plan, which may have resized it
	a := *inst.Autoscale
	a.LastOperation = ev.At
	a.Events = append(append([]AutoscaleEvent(nil), a.Events...), *ev)
	if len(a.Events) > MaxAutoscaleEvents {
		a.Events = a.Events[len(a.Events)-MaxAutoscaleEvents:]
	}
	inst.Autoscale = &a
	return c.Name, nil
}
