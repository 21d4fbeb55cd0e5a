package autoscale

import (
	"fmt"
	"time"
)

// Rules are the seed's six reactive rules (Savchuk & Kozachuk 2015, table
// in section 3.2 of ../shared/research/seeds-round2.md) with their
// thresholds made configurable. DefaultRules has the seed's values.
type Rules struct {
	CountUpCPU        float64       // rule 1: CPU above → +1 instance (0.75)
	CountDownCPU      float64       // rule 2: CPU below → −1 instance (0.10)
	CountUpMemory     float64       // rule 3: memory above → +1 instance (0.90)
	SizeUpRequestTime time.Duration // rule 4: request time above → size +1 (5 s)
	SizeUpCPU         float64       // rule 5: CPU above → size +1 (0.70)
	SizeDownCPU       float64       // rule 6: CPU below → size −1 (0.15)
	// Window is how many one-minute samples are averaged before the rules
	// are applied (OPEN in the seed). Ours is 1, the seed's one-minute
	// statistics as they come: in the simulation a longer window only made
	// the reactive baseline slower and dearer (docs/autoscaling.md).
	Window int
}

// DefaultRules returns the seed's thresholds.
func DefaultRules() Rules {
	return Rules{
		CountUpCPU:        0.75,
		CountDownCPU:      0.10,
		CountUpMemory:     0.90,
		SizeUpRequestTime: 5 * time.Second,
		SizeUpCPU:         0.70,
		SizeDownCPU:       0.15,
		Window:            1,
	}
}

// Validate reports thresholds that contradict each other.
func (r Rules) Validate() error {
	switch {
	case r.Window < 1:
		return fmt.Errorf("autoscale: rules window %d: must be at least 1 minute", r.Window)
	case r.CountDownCPU < 0 || r.CountUpCPU > 1 || r.CountDownCPU >= r.CountUpCPU:
		return fmt.Errorf("autoscale: count CPU thresholds %.2f/%.2f: need 0 <= down < up <= 1", r.CountDownCPU, r.CountUpCPU)
	case r.SizeDownCPU < 0 || r.SizeUpCPU > 1 || r.SizeDownCPU >= r.SizeUpCPU:
		return fmt.Errorf("autoscale: size CPU thresholds %.2f/%.2f: need 0 <= down < up <= 1", r.SizeDownCPU, r.SizeUpCPU)
	case r.CountUpMemory <= 0 || r.CountUpMemory > 1:
		return fmt.Errorf("autoscale: memory threshold %.2f: must be in (0, 1]", r.CountUpMemory)
	case r.SizeUpRequestTime <= 0:
		return fmt.Errorf("autoscale: request time threshold %v: must be positive", r.SizeUpRequestTime)
	}
	return nil
}

// Reactive applies the rules to the averaged latest samples. The seed does
// not say which rule wins when several fire (1 and 5 both fire above 75 %
// CPU, 2 and 6 below 10 %); ours, in order:
//
//  1. scale-out rules before scale-in rules;
//  2. CPU > CountUpCPU → +1 instance; memory > CountUpMemory → +1 instance;
//     request time > SizeUpRequestTime → size +1; CPU > SizeUpCPU → size +1
//     (one instance is the finer step, so it wins where both fire);
//  3. CPU < CountDownCPU → −1 instance; CPU < SizeDownCPU → size −1;
//  4. an action the bounds forbid falls back to the other dimension in the
//     same direction (at max count, +1 instance becomes size +1).
type Reactive struct {
	Rules Rules
}

// Validate reports thresholds that contradict each other.
func (p Reactive) Validate() error { return p.Rules.Validate() }

// Decide implements Policy.
func (p Reactive) Decide(in Input) Decision {
	d := Decision{At: in.Now, From: in.Current, To: in.Current, Source: SourceReactive}
	if len(in.History) == 0 {
		d.Reason = "no metrics yet"
		return d
	}
	r := p.Rules
	w := r.Window
	cpu := lastMean(in.History, w, func(s Sample) float64 { return s.CPU })
	mem := lastMean(in.History, w, func(s Sample) float64 { return s.Memory })
	rt := time.Duration(lastMean(in.History, w, func(s Sample) float64 { return float64(s.RequestTime) }))
	cur, b := in.Current, in.Bounds
	count := func(delta int) (State, bool) {
		if n := cur.Count + delta; n >= b.MinCount && n <= b.MaxCount {
			return State{Count: n, Size: cur.Size}, true
		}
		return cur, false
	}
	size := func(delta int) (State, bool) {
		if s := cur.Size + delta; s >= b.MinSize && s <= b.MaxSize {
			return State{Count: cur.Count, Size: s}, true
		}
		return cur, false
	}
	// act tries the rule's own action, then the fallback in the same direction.
	act := func(first, second func(int) (State, bool), delta int, why string) Decision {
		if s, ok := first(delta); ok {
			d.To, d.Reason = s, why
			return d
		}
		if s, ok := second(delta); ok {
			d.To, d.Reason = s, why+" (other dimension at its bound)"
			return d
		}
		d.Reason = why + ", but both count and size are at their bounds"
		return d
	}
	avg := fmt.Sprintf("over %d min", min(w, len(in.History)))
	switch {
	case cpu > r.CountUpCPU:
		return act(count, size, +1, fmt.Sprintf("CPU %s > %s %s: +1 instance", pct(cpu), pct(r.CountUpCPU), avg))
	case mem > r.CountUpMemory:
		return act(count, size, +1, fmt.Sprintf("memory %s > %s %s: +1 instance", pct(mem), pct(r.CountUpMemory), avg))
	case rt > r.SizeUpRequestTime:
		return act(size, count, +1, fmt.Sprintf("request time %v > %v %s: larger size", rt.Round(time.Millisecond), r.SizeUpRequestTime, avg))
	case cpu > r.SizeUpCPU:
		return act(size, count, +1, fmt.Sprintf("CPU %s > %s %s: larger size", pct(cpu), pct(r.SizeUpCPU), avg))
	case cpu < r.CountDownCPU:
		return act(count, size, -1, fmt.Sprintf("CPU %s < %s %s: −1 instance", pct(cpu), pct(r.CountDownCPU), avg))
	case cpu < r.SizeDownCPU:
		if s, ok := size(-1); ok {
			d.To, d.Reason = s, fmt.Sprintf("CPU %s < %s %s: smaller size", pct(cpu), pct(r.SizeDownCPU), avg)
			return d
		}
		d.Reason = fmt.Sprintf("CPU %s < %s %s, already the smallest size allowed", pct(cpu), pct(r.SizeDownCPU), avg)
		return d
	}
	d.Reason = fmt.Sprintf("CPU %s, memory %s, request time %v %s: no rule fires", pct(cpu), pct(mem), rt.Round(time.Millisecond), avg)
	return d
}
