package autoscale

import (
	"fmt"
	"math"
	"sort"
)

// Proactive forecasts the request rate and picks the state that minimises
// the seed's criterion over the horizon: the price of holding the state
// plus $LostUserPrice for every user expected to leave because requests are
// slow. The seed priced options with a measured "hypercube" of request
// times per state; ours is simpler and documented in docs/autoscaling.md:
//
//   - capacity per ladder unit (requests per minute at 100 % CPU) is learned
//     from the history as Requests ÷ (CPU × running units), median of the
//     unsaturated minutes;
//   - a state serves up to SafeUtilisation of its capacity without slow
//     requests; demand above that is taken as lost;
//   - the forecast at h minutes ahead is Normal(path[h], σ·√h·ErrorScale),
//     σ the forecaster's one-step error, so the expected lost requests are
//     the expected shortfall E[max(0, L − capacity)];
//   - lost users = lost requests ÷ RequestsPerUser.
type Proactive struct {
	Forecaster Forecaster
	// History is how many latest points are fitted (125 in the seed).
	History int
	// MinHistory is how many points the forecast needs before it is used.
	MinHistory int
	// Horizon is how many minutes ahead the options are priced (15 in the
	// seed, "the maximum duration of a scaling operation").
	Horizon int
	// LostUserPrice is the seed's $0.00027 per lost user.
	LostUserPrice float64
	// RequestsPerUser converts lost requests into lost users.
	RequestsPerUser float64
	// SafeUtilisation is the share of capacity usable without slow
	// requests. It stays below the reactive size-up threshold (70 %) so
	// the two halves of Combined do not fight.
	SafeUtilisation float64
	// ErrorScale widens (>1) or narrows the forecast's error band.
	ErrorScale float64
	// Margin is how much cheaper (a fraction of the current state's cost)
	// another state must be to be worth an operation.
	Margin float64
	// ScaleInLookback keeps capacity a while after a peak: a state with
	// fewer units than the current one must also serve the highest demand
	// of this many latest minutes (the role of HPA's stabilisation window).
	ScaleInLookback int
	// CapacityPerUnit is used until the history teaches one (0: no
	// proactive decision before that).
	CapacityPerUnit float64
}

// DefaultProactive returns the seed's settings and the parameters the
// simulation chose.
func DefaultProactive() Proactive {
	return Proactive{
		Forecaster:      DefaultHolt(),
		History:         125,
		MinHistory:      30,
		Horizon:         15,
		LostUserPrice:   0.00027,
		RequestsPerUser: 20,
		SafeUtilisation: 0.6,
		ErrorScale:      1,
		Margin:          0.1,
	}
}

// Validate reports settings that cannot work.
func (p Proactive) Validate() error {
	switch {
	case p.Forecaster == nil:
		return fmt.Errorf("autoscale: proactive needs a forecaster")
	case p.History < 3 || p.MinHistory < 3 || p.MinHistory > p.History:
		return fmt.Errorf("autoscale: proactive history %d / min %d: need 3 <= min <= history", p.History, p.MinHistory)
	case p.Horizon < 1:
		return fmt.Errorf("autoscale: proactive horizon %d: must be at least 1 minute", p.Horizon)
	case p.LostUserPrice < 0 || p.RequestsPerUser <= 0:
		return fmt.Errorf("autoscale: lost user price %v / requests per user %v: need >= 0 and > 0", p.LostUserPrice, p.RequestsPerUser)
	case p.SafeUtilisation <= 0 || p.SafeUtilisation > 1:
		return fmt.Errorf("autoscale: safe utilisation %v: must be in (0, 1]", p.SafeUtilisation)
	case p.ErrorScale < 0 || p.Margin < 0 || p.Margin >= 1:
		return fmt.Errorf("autoscale: error scale %v / margin %v: need >= 0 and 0 <= margin < 1", p.ErrorScale, p.Margin)
	}
	return nil
}

// Decide implements Policy.
func (p Proactive) Decide(in Input) Decision {
	d, _ := p.propose(in)
	return d
}

// LearnCapacity estimates requests per minute one ladder unit serves at
// 100 % CPU from the last hour of history; ok is false when no minute
// was usable (idle, saturated or missing).
func LearnCapacity(h []Sample, l Ladder) (perUnit float64, ok bool) {
	if len(h) > 60 {
		h = h[len(h)-60:]
	}
	var est []float64
	for _, s := range h {
		u := l.Units(s.Running)
		// Below 5 % CPU the fixed overheads dominate; above 90 % the
		// instance is saturated and the demand may exceed what it served.
		if u <= 0 || s.CPU < 0.05 || s.CPU > 0.9 || s.Requests <= 0 {
			continue
		}
		est = append(est, s.Requests/(s.CPU*u))
	}
	if len(est) == 0 {
		return 0, false
	}
	sort.Float64s(est)
	return est[len(est)/2], true
}

// propose returns the proactive decision and whether a forecast was
// possible at all.
func (p Proactive) propose(in Input) (Decision, bool) {
	d := Decision{At: in.Now, From: in.Current, To: in.Current, Source: SourceProactive}
	h := in.History
	if len(h) > p.History {
		h = h[len(h)-p.History:]
	}
	if len(h) < p.MinHistory {
		d.Reason = fmt.Sprintf("forecast needs %d one-minute points, have %d", p.MinHistory, len(h))
		return d, false
	}
	perUnit, ok := LearnCapacity(h, in.Ladder)
	if !ok {
		if p.CapacityPerUnit <= 0 {
			d.Reason = "capacity per instance not learned yet (no minute between 5 % and 90 % CPU)"
			return d, false
		}
		perUnit = p.CapacityPerUnit
	}
	series := make([]float64, len(h))
	for i, s := range h {
		series[i] = s.Requests
	}
	path, sigma, err := p.Forecaster.Forecast(series, p.Horizon)
	if err != nil {
		d.Reason = fmt.Sprintf("forecast failed: %v", err)
		return d, false
	}
	peak := 0.0
	for _, v := range path {
		peak = max(peak, v)
	}
	d.Forecast = peak

	cost := func(s State) (hold, loss float64) {
		c := in.Ladder.Units(s) * perUnit * p.SafeUtilisation
		for i, f := range path {
			sd := sigma * p.ErrorScale * math.Sqrt(float64(i+1))
			loss += shortfall(f, sd, c)
		}
		return in.Ladder.PricePerMinute(s) * float64(len(path)), loss / p.RequestsPerUser * p.LostUserPrice
	}
	recent := 0.0
	for i := max(0, len(series)-p.ScaleInLookback); i < len(series); i++ {
		recent = max(recent, series[i])
	}
	curUnits := in.Ladder.Units(in.Current)
	ch, cl := cost(in.Current)
	best, bh, bl := in.Current, ch, cl
	b := in.Bounds
	for size := b.MinSize; size <= b.MaxSize; size++ {
		for n := b.MinCount; n <= b.MaxCount; n++ {
			s := State{Count: n, Size: size}
			if u := in.Ladder.Units(s); u < curUnits && u*perUnit*p.SafeUtilisation < recent {
				continue
			}
			sh, sl := cost(s)
			if sh+sl < bh+bl || (sh+sl == bh+bl && distance(s, in.Current) < distance(best, in.Current)) {
				best, bh, bl = s, sh, sl
			}
		}
	}
	why := fmt.Sprintf("forecast peak %.0f req/min within %d min (σ %.0f), capacity %.0f req/min per unit", peak, p.Horizon, sigma, perUnit)
	if best != in.Current && bh+bl < (1-p.Margin)*(ch+cl) {
		d.To = best
		d.Reason = fmt.Sprintf("%s: %s costs $%.4f (hold %.4f + lost users %.4f) over the horizon vs $%.4f for %s",
			why, in.Ladder.Label(best), bh+bl, bh, bl, ch+cl, in.Ladder.Label(in.Current))
		return d, true
	}
	d.Reason = fmt.Sprintf("%s: %s is within %.0f %% of the cheapest option ($%.4f)", why, in.Ladder.Label(in.Current), 100*p.Margin, ch+cl)
	return d, true
}

// shortfall is E[max(0, L − c)] for L ~ Normal(mean, sd).
func shortfall(mean, sd, c float64) float64 {
	if sd <= 0 {
		return max(0, mean-c)
	}
	z := (mean - c) / sd
	pdf := math.Exp(-z*z/2) / math.Sqrt(2*math.Pi)
	cdf := 0.5 * math.Erfc(-z/math.Sqrt2)
	return sd*pdf + (mean-c)*cdf
}

func distance(a, b State) int {
	dc, ds := a.Count-b.Count, a.Size-b.Size
	return max(dc, -dc) + max(ds, -ds)
}
