package autoscale

import (
	"fmt"
	"math"
	"time"
)

// HPA is the Kubernetes Horizontal Pod Autoscaler's rule, for comparison:
// desired = ceil(ready × CPU/TargetCPU), no change while the ratio is
// within Tolerance of 1, and a scale-down only to the highest
// recommendation of the last Stabilisation (so a dip must last that long).
// Like HPA it changes only the count, never the size, and it counts only
// the instances that served the minute (an instance still starting is
// HPA's unready pod, which it leaves out of the ratio).
type HPA struct {
	TargetCPU     float64
	Tolerance     float64
	Stabilisation time.Duration
}

// DefaultHPA returns Kubernetes' defaults (10 % tolerance, 5 min
// scale-down window) with a 60 % CPU target.
func DefaultHPA() HPA {
	return HPA{TargetCPU: 0.6, Tolerance: 0.1, Stabilisation: 5 * time.Minute}
}

// Validate reports settings that cannot work.
func (p HPA) Validate() error {
	if p.TargetCPU <= 0 || p.TargetCPU > 1 || p.Tolerance < 0 || p.Tolerance >= 1 || p.Stabilisation < 0 {
		return fmt.Errorf("autoscale: hpa target %v / tolerance %v / window %v: need target in (0,1], tolerance in [0,1), window >= 0", p.TargetCPU, p.Tolerance, p.Stabilisation)
	}
	return nil
}

// recommend is the proportional rule for one sample.
func (p HPA) recommend(s Sample, current int) int {
	ratio := s.CPU / p.TargetCPU
	if math.Abs(ratio-1) <= p.Tolerance || s.Running.Count == 0 {
		return current
	}
	return int(math.Ceil(float64(s.Running.Count) * ratio))
}

// Decide implements Policy.
func (p HPA) Decide(in Input) Decision {
	d := Decision{At: in.Now, From: in.Current, To: in.Current, Source: SourceHPA}
	if len(in.History) == 0 {
		d.Reason = "no metrics yet"
		return d
	}
	last := in.History[len(in.History)-1]
	want := p.recommend(last, in.Current.Count)
	why := fmt.Sprintf("CPU %s on %d ready against a %s target: %d instances", pct(last.CPU), last.Running.Count, pct(p.TargetCPU), want)
	if want < in.Current.Count {
		// Scale down only as far as every recommendation in the window allows.
		for i := len(in.History) - 2; i >= 0 && in.Now.Sub(in.History[i].At) < p.Stabilisation; i-- {
			want = max(want, p.recommend(in.History[i], in.Current.Count))
		}
		want = min(want, in.Current.Count)
		why += fmt.Sprintf(", %d after the %v stabilisation window", want, p.Stabilisation)
	}
	d.To.Count = want
	d.Reason = why
	return d
}
