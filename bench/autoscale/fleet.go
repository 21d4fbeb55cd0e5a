package autoscale

import (
	"time"

	as "potluck/core/autoscale"
)

// instance is one simulated instance; times are simulated minutes.
type instance struct {
	size     int
	readyAt  int
	retireAt int // -1: not retiring
}

// fleet is an installation's instances as scaling operations change them:
// new instances serve after StartDelay; a change of size is a rolling
// replacement in which the old instances serve until the new ones are
// ready (ResizeDelay later); a scale-in drains and stops at once.
type fleet struct {
	m         Model
	commanded as.State
	insts     []instance
}

func newFleet(m Model, start as.State) *fleet {
	f := &fleet{m: m, commanded: start}
	for range start.Count {
		f.insts = append(f.insts, instance{size: start.Size, retireAt: -1})
	}
	return f
}

func minutes(d time.Duration) int { return int((d + time.Minute - 1) / time.Minute) }

// command carries out an operation decided at the end of minute now-1.
func (f *fleet) command(now int, to as.State) {
	if to.Size == f.commanded.Size {
		var live []int // indexes of non-retiring instances, pending last
		for i, in := range f.insts {
			if in.retireAt < 0 {
				live = append(live, i)
			}
		}
		if diff := to.Count - len(live); diff > 0 {
			for range diff {
				f.insts = append(f.insts, instance{size: to.Size, readyAt: now + minutes(f.m.StartDelay), retireAt: -1})
			}
		} else if diff < 0 {
			// Stop the ones that became (or will become) ready last first.
			drop := map[int]bool{}
			for k := 0; k < -diff; k++ {
				latest := -1
				for _, i := range live {
					if !drop[i] && (latest < 0 || f.insts[i].readyAt >= f.insts[latest].readyAt) {
						latest = i
					}
				}
				drop[latest] = true
			}
			f.remove(func(i int, _ instance) bool { return drop[i] })
		}
	} else {
		ready := now + minutes(f.m.ResizeDelay)
		f.remove(func(_ int, in instance) bool { return in.readyAt > now }) // never started
		for i := range f.insts {
			f.insts[i].retireAt = ready
		}
		for range to.Count {
			f.insts = append(f.insts, instance{size: to.Size, readyAt: ready, retireAt: -1})
		}
	}
	f.commanded = to
}

func (f *fleet) remove(drop func(int, instance) bool) {
	kept := f.insts[:0]
	for i, in := range f.insts {
		if !drop(i, in) {
			kept = append(kept, in)
		}
	}
	f.insts = kept
}

// tick retires the instances whose replacements are ready at now.
func (f *fleet) tick(now int) {
	f.remove(func(_ int, in instance) bool { return in.retireAt >= 0 && in.retireAt <= now })
}

// running is what serves minute now: its capacity in units, the number of
// instances, and a State for the metrics (mixed sizes, possible only
// briefly during a resize, are reported as the size holding most units).
func (f *fleet) running(now int) (units float64, count int, st as.State, memMB int) {
	bySize := map[int]float64{}
	for _, in := range f.insts {
		if in.readyAt <= now {
			u := f.m.Ladder[in.size].Units
			units += u
			count++
			bySize[in.size] += u
		}
	}
	if count == 0 {
		return 0, 0, as.State{}, 0
	}
	top := -1
	for s, u := range bySize {
		if top < 0 || u > bySize[top] || (u == bySize[top] && s < top) {
			top = s
		}
	}
	st = as.State{Size: top, Count: int(units/f.m.Ladder[top].Units + 0.5)}
	return units, count, st, f.m.Ladder[top].MemoryMB
}

// pricePerMinute is what every existing instance (starting, serving or
// being replaced) costs for a minute.
func (f *fleet) pricePerMinute() float64 {
	var p float64
	for _, in := range f.insts {
		p += f.m.Ladder[in.size].PricePerHour / 60
	}
	return p
}
