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
	byHost map[string]fsm.Resources
}

// NewMeasuredDemand forecasts every Back of st at once, in one pass over its
// instances: a plan asks for a Back's load once per candidate per instance
// it places, and that must not walk the whole state each time.
func NewMeasuredDemand(st *fsm.State, u Usage) *MeasuredDemand {
	type share struct {
		cpu, mem float64
		ok       bool
	}
	shares := map[string]share{}
	d := &MeasuredDemand{byHost: map[string]fsm.Resources{}}
	for _, in := range st.Instances {
		s, seen := shares[in.Installation]
		if !seen {
			s.cpu, s.mem, s.ok = u.Share(in.Installation)
			shares[in.Installation] = s
		}
		need := st.InstanceNeed(in)
		if s.ok {
			need = fsm.Resources{
				MilliCPU: int64(math.Ceil(min(s.cpu, 1) * float64(need.MilliCPU))),
				MemoryMB: int64(math.Ceil(min(s.mem, 1) * float64(need.MemoryMB))),
				DiskMB:   need.DiskMB,
			}
		}
		d.byHost[in.HostID] = d.byHost[in.HostID].Add(need)
	}
	return d
}

// Load is the forecast of the instances on h; reserved is not needed,
// since the state says what each instance reserves.
func (d *MeasuredDemand) Load(h *fsm.Host, _ fsm.Resources) fsm.Resources {
	return d.byHost[h.ID]
}

// Measured is the options that make a plan on st rank Backs by u's
// measurements (none when u is nil: reservations, as before metrics).
func Measured(st *fsm.State, u Usage) []Option {
	if u == nil {
		return nil
	}
	return []Option{WithDemand(NewMeasuredDemand(st, u))}
}
