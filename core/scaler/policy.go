package scaler

import (
	"fmt"
	"time"

	"potluck/core/autoscale"
	"potluck/core/fsm"
	"potluck/core/series"
)

// Policy maps an installation's settings onto core/autoscale. Potluck
// scales the count only: the ladder has one size, the installation's own
// (a size change is a new release, which its owner deploys), so the seed's
// size rules fall back to the count in the same direction. The CPU target
// replaces the seed's 75 % of rule 1 (and rule 5, which then says the
// same); the forecast's safe utilisation is 0.8 × the target, which at
// the default target is the 60 % the simulation chose; HPA's target is the
// target itself. A step stands for the seed's minute: the rules average
// one step, HPA stabilises over five.
func Policy(inst *fsm.Installation, step time.Duration) (autoscale.Policy, autoscale.Ladder, autoscale.Bounds) {
	a := inst.Autoscale
	units := float64(inst.PerInstance.MilliCPU) / 1000
	if units <= 0 {
		units = 1
	}
	ladder := autoscale.Ladder{{Name: fmt.Sprintf("%gcpu", units), Units: units, MemoryMB: int(inst.PerInstance.MemoryMB), PricePerHour: 0.04 * units}}
	bounds := autoscale.Bounds{MinCount: a.Min, MaxCount: a.Max}
	rules := autoscale.DefaultRules()
	rules.CountUpCPU, rules.SizeUpCPU = a.CPUTarget, a.CPUTarget
	rules.SizeDownCPU = rules.CountDownCPU
	switch a.Policy {
	case fsm.AutoscaleReactive:
		return autoscale.Reactive{Rules: rules}, ladder, bounds
	case fsm.AutoscaleHPA:
		h := autoscale.DefaultHPA()
		h.TargetCPU, h.Stabilisation = a.CPUTarget, 5*step
		return h, ladder, bounds
	}
	c := autoscale.DefaultCombined()
	c.Reactive.Rules = rules
	c.Proactive.SafeUtilisation = 0.8 * a.CPUTarget
	return c, ladder, bounds
}

// Samples turns the series' points into the decision code's samples,
// leaving out points no Back reported in (no data on CPU is not idle).
func Samples(ps []series.Point) []autoscale.Sample {
	out := make([]autoscale.Sample, 0, len(ps))
	for _, p := range ps {
		if !p.Backs {
			continue
		}
		out = append(out, autoscale.Sample{At: p.At, Requests: p.Requests, CPU: p.CPU, Memory: p.Memory,
			RequestTime: time.Duration(p.MeanMS * float64(time.Millisecond)), Running: autoscale.State{Count: p.Instances}})
	}
	return out
}
