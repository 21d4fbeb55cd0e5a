package scheduler

import (
	"math"

	"potluck/core/fsm"
)

// Usage tells how much of what its instances reserve an installation used
// lately, as shares of cpu and memory (ok false: nothing measured). The
// leader's metrics series (core/series) is one.
type Usage interface {
	Share(installation string) (cpu, memory float64, ok bool)
}

// MeasuredDemand forecasts a Back's load from what its instances used
// lately: each instance is expected to use its installation's recent share
// of what it reserves, or all of it when nothing was measured (a new
// installation, a leader that just took over). Disk is taken as reserved.
type MeasuredDemand struct {
	// load is the forecast per host id. A plan asks for it once per
	// candidate Back and placement, so it is summed up front in one walk
	// over the instances, not by a walk over all of them per question.
	load map[string]fsm.Resources
}

// NewMeasuredDemand forecasts the Backs of st by u's measurements.
func NewMeasuredDemand(st *fsm.State, u Usage) MeasuredDemand {
	load := make(map[string]fsm.Resources, len(st.Hosts))
	for _, in := range st.Instances {
		need := st.InstanceNeed(in)
		if cpu, mem, ok := u.Share(in.Installation); ok {
			need.MilliCPU = int64(math.Ceil(min(cpu, 1) * float64(need.MilliCPU)))
			need.MemoryMB = int64(math.Ceil(min(mem, 1) * float64(need.MemoryMB)))
		}
		load[in.HostID] = load[in.HostID].Add(need)
	}
	return MeasuredDemand{load: load}
}

// Load is the forecast of the instances on h; reserved is not needed,
// since the state says what each instance reserves.
func (d MeasuredDemand) Load(h *fsm.Host, _ fsm.Resources) fsm.Resources { return d.load[h.ID] }

// Measured is the options that make a plan on st rank Backs by u's
// measurements (none when u is nil: reservations, as before metrics).
func Measured(st *fsm.State, u Usage) []Option {
	if u == nil {
		return nil
	}
	return []Option{WithDemand(NewMeasuredDemand(st, u))}
}
