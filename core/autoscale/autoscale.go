// Package autoscale decides how many instances of which size an installation
// should run. It is pure decision code: no raft, no HTTP, no clock reads; the
// caller passes the time, the commanded state and the metric history, and
// gets back a Decision carrying a human-readable reason, meant for the
// event log. bench/autoscale replays load profiles through this code; the
// leader does not run it yet (docs/autoscaling.md, "Wiring it into the
// leader").
//
// Policies: Reactive (the seed's six rules), Proactive (a forecast over the
// last 125 one-minute points, 15 minutes ahead, priced per option), Combined
// (the two merged, the default) and HPA (Kubernetes' proportional rule, for
// comparison). A Controller wraps any policy with min/max bounds and a
// minimum interval between operations. docs/autoscaling.md explains every
// choice.
package autoscale

import (
	"errors"
	"fmt"
	"time"
)

// Size is one rung of the size ladder: the resources of one instance and
// its price.
type Size struct {
	Name string
	// Units is the instance's capacity relative to the others (its CPU
	// cores). Capacity of a state is Count × Units.
	Units float64
	// MemoryMB is the instance's memory limit.
	MemoryMB int
	// PricePerHour is what one instance of this size costs to hold, in USD.
	PricePerHour float64
}

// Ladder is the sizes an installation may use, smallest first.
type Ladder []Size

// DefaultLadder is our choice (the seed gives only "one small VM"): each
// rung doubles CPU, memory and price, like the Azure App Service tiers the
// seed ran on. Prices are ours, chosen so a quiet installation costs about
// what the seed's low-load row does per minute.
func DefaultLadder() Ladder {
	return Ladder{
		{Name: "small", Units: 1, MemoryMB: 512, PricePerHour: 0.04},
		{Name: "medium", Units: 2, MemoryMB: 1024, PricePerHour: 0.08},
		{Name: "large", Units: 4, MemoryMB: 2048, PricePerHour: 0.16},
	}
}

// Validate reports a ladder that cannot be used.
func (l Ladder) Validate() error {
	if len(l) == 0 {
		return errors.New("autoscale: empty size ladder")
	}
	for i, s := range l {
		if s.Units <= 0 || s.PricePerHour < 0 {
			return fmt.Errorf("autoscale: size %d (%q): units must be > 0 and price >= 0", i, s.Name)
		}
		if i > 0 && s.Units <= l[i-1].Units {
			return fmt.Errorf("autoscale: size %d (%q) is not larger than the one before it", i, s.Name)
		}
	}
	return nil
}

// State is a number of instances of one size (an index into the Ladder).
type State struct {
	Count int `json:"count"`
	Size  int `json:"size"`
}

func (s State) String() string { return fmt.Sprintf("%d×size%d", s.Count, s.Size) }

// Label names the state with the ladder's size names, e.g. "3×small".
func (l Ladder) Label(s State) string {
	if s.Size >= 0 && s.Size < len(l) {
		return fmt.Sprintf("%d×%s", s.Count, l[s.Size].Name)
	}
	return s.String()
}

// Units is the state's capacity in ladder units (Count × Units of its size).
func (l Ladder) Units(s State) float64 {
	if s.Size < 0 || s.Size >= len(l) {
		return 0
	}
	return float64(s.Count) * l[s.Size].Units
}

// PricePerMinute is what holding the state costs for one minute.
func (l Ladder) PricePerMinute(s State) float64 {
	if s.Size < 0 || s.Size >= len(l) {
		return 0
	}
	return float64(s.Count) * l[s.Size].PricePerHour / 60
}

// Bounds limit the states a policy may choose.
type Bounds struct {
	MinCount, MaxCount int
	// MinSize and MaxSize are ladder indexes.
	MinSize, MaxSize int
}

// Validate reports bounds that are empty or outside the ladder.
func (b Bounds) Validate(l Ladder) error {
	switch {
	case b.MinCount < 1:
		return fmt.Errorf("autoscale: min count %d: must be at least 1", b.MinCount)
	case b.MaxCount < b.MinCount:
		return fmt.Errorf("autoscale: max count %d is below min count %d", b.MaxCount, b.MinCount)
	case b.MinSize < 0 || b.MaxSize >= len(l) || b.MaxSize < b.MinSize:
		return fmt.Errorf("autoscale: sizes %d..%d: must be within 0..%d, min first", b.MinSize, b.MaxSize, len(l)-1)
	}
	return nil
}

// Contains reports whether s is within the bounds.
func (b Bounds) Contains(s State) bool {
	return s.Count >= b.MinCount && s.Count <= b.MaxCount && s.Size >= b.MinSize && s.Size <= b.MaxSize
}

// Clamp returns the state within the bounds nearest to s.
func (b Bounds) Clamp(s State) State {
	s.Count = min(max(s.Count, b.MinCount), b.MaxCount)
	s.Size = min(max(s.Size, b.MinSize), b.MaxSize)
	return s
}

// Sample is one minute of an installation's metrics.
type Sample struct {
	At time.Time
	// Requests is the demand: requests that arrived at the Fronts in the
	// minute, served or not.
	Requests float64
	// CPU and Memory are the mean utilisation of the running instances,
	// 0..1 of their limits.
	CPU, Memory float64
	// RequestTime is the mean time to answer a request in the minute.
	RequestTime time.Duration
	// Running is what served the minute: instances still starting or
	// being resized are not in it.
	Running State
}

// Input is what a policy decides from.
type Input struct {
	Now time.Time
	// Current is the commanded state (what the last operation asked for,
	// even if some of it is still starting).
	Current State
	// History is the installation's samples, oldest first, one a minute;
	// the last one is the latest. Policies read only what they need.
	History []Sample
	Ladder  Ladder
	Bounds  Bounds
}

// Source names what made a decision.
type Source string

const (
	SourceHold      Source = "hold"
	SourceReactive  Source = "reactive"
	SourceProactive Source = "proactive"
	SourceHPA       Source = "hpa"
	SourceBounds    Source = "bounds"
	SourceInterval  Source = "interval"
)

// Decision is what a policy or the Controller decided at one moment.
type Decision struct {
	At     time.Time `json:"at"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Source Source    `json:"source"`
	Reason string    `json:"reason"`
	// Forecast is the load the decision was designed for (requests per
	// minute, the forecast's peak over the horizon); 0 when no forecast
	// was used.
	Forecast float64 `json:"forecast,omitempty"`
}

// Changed reports whether the decision is an operation.
func (d Decision) Changed() bool { return d.From != d.To }

// Policy proposes a state. It may propose a state outside the bounds or
// inside the minimum interval; the Controller enforces both.
type Policy interface {
	Decide(in Input) Decision
}

// mean of the last n samples' field (all if fewer).
func lastMean(h []Sample, n int, f func(Sample) float64) float64 {
	if n > len(h) {
		n = len(h)
	}
	if n <= 0 {
		return 0
	}
	var sum float64
	for _, s := range h[len(h)-n:] {
		sum += f(s)
	}
	return sum / float64(n)
}

func pct(v float64) string { return fmt.Sprintf("%.0f %%", 100*v) }
