package autoscale

import "fmt"

// Combined merges the seed's reactive rules with the proactive forecast.
// The seed leaves the merge open; ours:
//
//   - until the forecast has MinHistory points and a learned capacity, the
//     reactive decision stands;
//   - otherwise the proactive decision stands (it priced every option,
//     scale-in included), except that a reactive scale-out that asks for
//     more capacity than both the current state and the proactive choice
//     wins: the rules are the safety net for load the forecast missed.
//
// So a reactive scale-in the forecast disagrees with is vetoed (the forecast
// sees the load coming back), and the forecast may scale out or in by more
// than one step at once.
type Combined struct {
	Reactive  Reactive
	Proactive Proactive
}

// DefaultCombined returns the seed's rules with the default forecast.
func DefaultCombined() Combined {
	return Combined{Reactive: Reactive{Rules: DefaultRules()}, Proactive: DefaultProactive()}
}

// Validate reports settings that cannot work.
func (c Combined) Validate() error {
	if err := c.Reactive.Rules.Validate(); err != nil {
		return err
	}
	return c.Proactive.Validate()
}

// Decide implements Policy.
func (c Combined) Decide(in Input) Decision {
	r := c.Reactive.Decide(in)
	p, ok := c.Proactive.propose(in)
	if !ok {
		r.Reason = fmt.Sprintf("%s (%s, so the rules alone decide)", r.Reason, p.Reason)
		return r
	}
	ur, up, uc := in.Ladder.Units(r.To), in.Ladder.Units(p.To), in.Ladder.Units(in.Current)
	if ur > uc && ur > up {
		r.Forecast = p.Forecast
		r.Reason = fmt.Sprintf("%s; the forecast asked only for %s (%s)", r.Reason, in.Ladder.Label(p.To), p.Reason)
		return r
	}
	if r.Changed() && r.To != p.To {
		p.Reason = fmt.Sprintf("%s; overrides the rules' %s (%s)", p.Reason, in.Ladder.Label(r.To), r.Reason)
	}
	return p
}
