package autoscale

import (
	"fmt"
	"time"
)

// DefaultMinInterval is the seed's minimum time between two scaling
// operations.
const DefaultMinInterval = 25 * time.Minute

// Controller wraps a policy with the two guarantees every decision keeps,
// whatever the policy: the state stays within Bounds, and two operations
// are at least MinInterval apart (except to bring a state that is outside
// the bounds, after the operator changed them, back inside at once).
// It is not safe for concurrent use; the leader runs one per installation.
type Controller struct {
	policy      Policy
	ladder      Ladder
	bounds      Bounds
	minInterval time.Duration
	lastOp      time.Time
}

// NewController checks the settings; lastOp is the time of the latest
// operation (from the recorded events; zero if none).
func NewController(p Policy, l Ladder, b Bounds, minInterval time.Duration, lastOp time.Time) (*Controller, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if err := b.Validate(l); err != nil {
		return nil, err
	}
	if minInterval < 0 {
		return nil, fmt.Errorf("autoscale: min interval %v: must not be negative", minInterval)
	}
	if v, ok := p.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, err
		}
	}
	return &Controller{policy: p, ladder: l, bounds: b, minInterval: minInterval, lastOp: lastOp}, nil
}

// LastOperation is when the controller last changed the state.
func (c *Controller) LastOperation() time.Time { return c.lastOp }

// Step decides at now for the commanded state current, from history
// (oldest first, one sample a minute). A Decision with Changed() true is
// an operation the caller must carry out; others explain why not.
func (c *Controller) Step(now time.Time, current State, history []Sample) Decision {
	if !c.bounds.Contains(current) {
		to := c.bounds.Clamp(current)
		c.lastOp = now
		return Decision{At: now, From: current, To: to, Source: SourceBounds,
			Reason: fmt.Sprintf("%s is outside the bounds (count %d..%d, size %s..%s)", c.ladder.Label(current),
				c.bounds.MinCount, c.bounds.MaxCount, c.ladder[c.bounds.MinSize].Name, c.ladder[c.bounds.MaxSize].Name)}
	}
	d := c.policy.Decide(Input{Now: now, Current: current, History: history, Ladder: c.ladder, Bounds: c.bounds})
	d.At, d.From = now, current
	if to := c.bounds.Clamp(d.To); to != d.To {
		d.Reason = fmt.Sprintf("%s; %s limited to %s by the bounds", d.Reason, c.ladder.Label(d.To), c.ladder.Label(to))
		d.To = to
	}
	if !d.Changed() {
		return d
	}
	if !c.lastOp.IsZero() && now.Sub(c.lastOp) < c.minInterval {
		return Decision{At: now, From: current, To: current, Source: SourceInterval, Forecast: d.Forecast,
			Reason: fmt.Sprintf("held: %s wanted %s (%s), but the last operation was %v ago and the minimum interval is %v",
				d.Source, c.ladder.Label(d.To), d.Reason, now.Sub(c.lastOp).Round(time.Second), c.minInterval)}
	}
	c.lastOp = now
	return d
}
