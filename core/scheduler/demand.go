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
	st     *fsm.State
	usage  fsm.Usage
	u      Usage
	shares map[string]share
	byHost map[string]fsm.Resources // forecasts made so far
}

type share struct {
	cpu, mem float64
	ok       bool
}

// NewMeasuredDemand forecasts the Backs of st as a plan asks for them, each
// once, from the instances on that Back only (the state's usage index): a
// plan asks for a Back's load once per candidate per instance it places,
// and a spread plan never does, so nothing walks the whole state.
func NewMeasuredDemand(st *fsm.State, u Usage) *MeasuredDemand {
	return &MeasuredDemand{st: st, usage: st.Usage(), u: u, shares: map[string]share{}, byHost: map[string]fsm.Resources{}}
}

// Load is the forecast of the instances on h; reserved is not needed,
// since the state says what each instance reserves.
func (d *MeasuredDemand) Load(h *fsm.Host, _ fsm.Resources) fsm.Resources {
	if l, ok := d.byHost[h.ID]; ok {
		return l
	}
	var load fsm.Resources
	for _, in := range d.usage.On(h.ID) {
		s, seen := d.shares[in.Installation]
		if !seen {
			s.cpu, s.mem, s.ok = d.u.Share(in.Installation)
			d.shares[in.Installation] = s
		}
		need := d.st.InstanceNeed(in)
		if s.ok {
			need = fsm.Resources{
				MilliCPU: int64(math.Ceil(min(s.cpu, 1) * float64(need.MilliCPU))),
				MemoryMB: int64(math.Ceil(min(s.mem, 1) * float64(need.MemoryMB))),
				DiskMB:   need.DiskMB,
			}
		}
		load = load.Add(need)
	}
	d.byHost[h.ID] = load
	return load
}

// Measured is the options that make a plan on st rank Backs by u's
// measurements (none when u is nil: reservations, as before metrics).
func Measured(st *fsm.State, u Usage) []Option {
	if u == nil {
		return nil
	}
	return []Option{WithDemand(NewMeasuredDemand(st, u))}
}
