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
	State *fsm.State
	Usage Usage
}

// Load sums the forecast of the instances on h; reserved is not needed,
// since the state says what each instance reserves.
func (d MeasuredDemand) Load(h *fsm.Host, _ fsm.Resources) fsm.Resources {
	var load fsm.Resources
	for _, in := range d.State.InstancesOn(h.ID) {
		need := d.State.InstanceNeed(in)
		cpu, mem, ok := d.Usage.Share(in.Installation)
		if !ok {
			load = load.Add(need)
			continue
		}
		load = load.Add(fsm.Resources{
			MilliCPU: int64(math.Ceil(min(cpu, 1) * float64(need.MilliCPU))),
			MemoryMB: int64(math.Ceil(min(mem, 1) * float64(need.MemoryMB))),
			DiskMB:   need.DiskMB,
		})
	}
	return load
}

// Measured is the options that make a plan on st rank Backs by u's
// measurements (none when u is nil: reservations, as before metrics).
func Measured(st *fsm.State, u Usage) []Option {
	if u == nil {
		return nil
	}
	return []Option{WithDemand(MeasuredDemand{State: st, Usage: u})}
}
