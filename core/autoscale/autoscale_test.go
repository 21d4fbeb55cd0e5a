package autoscale

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)

func bounds() Bounds { return Bounds{MinCount: 1, MaxCount: 5, MinSize: 0, MaxSize: 2} }

// steady returns n one-minute samples of constant metrics on running.
func steady(n int, req, cpu, mem float64, rt time.Duration, running State) []Sample {
	h := make([]Sample, n)
	for i := range h {
		h[i] = Sample{At: t0.Add(time.Duration(i) * time.Minute), Requests: req, CPU: cpu, Memory: mem, RequestTime: rt, Running: running}
	}
	return h
}

func TestBounds(t *testing.T) {
	l := DefaultLadder()
	for _, tc := range []struct {
		name   string
		b      Bounds
		err    string
		in     State
		clamp  State
		inside bool
	}{
		{name: "inside", b: bounds(), in: State{3, 1}, clamp: State{3, 1}, inside: true},
		{name: "count above", b: bounds(), in: State{9, 1}, clamp: State{5, 1}},
		{name: "count and size below", b: Bounds{MinCount: 2, MaxCount: 4, MinSize: 1, MaxSize: 2}, in: State{1, 0}, clamp: State{2, 1}},
		{name: "min count zero", b: Bounds{MinCount: 0, MaxCount: 3}, err: "at least 1"},
		{name: "max below min", b: Bounds{MinCount: 3, MaxCount: 2}, err: "below min"},
		{name: "size outside ladder", b: Bounds{MinCount: 1, MaxCount: 2, MaxSize: 3}, err: "within 0..2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Validate(l)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.clamp, tc.b.Clamp(tc.in))
			require.Equal(t, tc.inside, tc.b.Contains(tc.in))
		})
	}
}

func TestLadder(t *testing.T) {
	l := DefaultLadder()
	require.NoError(t, l.Validate())
	require.InDelta(t, 6.0, l.Units(State{3, 1}), 1e-9)
	require.InDelta(t, 3*0.08/60, l.PricePerMinute(State{3, 1}), 1e-12)
	require.Equal(t, "3×medium", l.Label(State{3, 1}))
	require.ErrorContains(t, Ladder{}.Validate(), "empty")
	require.ErrorContains(t, Ladder{{Name: "a", Units: 2}, {Name: "b", Units: 1}}.Validate(), "not larger")
}

func TestReactiveRules(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cpu, mem float64
		rt       time.Duration
		cur      State
		b        Bounds
		want     State
		reason   string
	}{
		{name: "rule 1 beats rule 5 above 75 %", cpu: 0.80, cur: State{2, 0}, want: State{3, 0}, reason: "CPU 80 % > 75 %"},
		{name: "rule 1 at max count falls back to size", cpu: 0.80, cur: State{5, 0}, want: State{5, 1}, reason: "other dimension"},
		{name: "rule 1 with everything at max", cpu: 0.99, cur: State{5, 2}, want: State{5, 2}, reason: "both count and size are at their bounds"},
		{name: "rule 3 memory", cpu: 0.30, mem: 0.95, cur: State{1, 0}, want: State{2, 0}, reason: "memory 95 % > 90 %"},
		{name: "rule 4 request time", cpu: 0.30, rt: 6 * time.Second, cur: State{2, 0}, want: State{2, 1}, reason: "request time 6s > 5s"},
		{name: "rule 4 at max size adds an instance", cpu: 0.30, rt: 6 * time.Second, cur: State{2, 2}, want: State{3, 2}, reason: "other dimension"},
		{name: "rule 5 between 70 and 75 %", cpu: 0.72, cur: State{2, 0}, want: State{2, 1}, reason: "CPU 72 % > 70 % over 1 min: larger size"},
		{name: "rule 2 beats rule 6 below 10 %", cpu: 0.05, cur: State{3, 1}, want: State{2, 1}, reason: "−1 instance"},
		{name: "rule 2 at min count falls back to size", cpu: 0.05, cur: State{1, 1}, want: State{1, 0}, reason: "other dimension"},
		{name: "rule 6 between 10 and 15 %", cpu: 0.12, cur: State{3, 1}, want: State{3, 0}, reason: "smaller size"},
		{name: "rule 6 at the smallest size", cpu: 0.12, cur: State{3, 0}, want: State{3, 0}, reason: "already the smallest"},
		{name: "dead band", cpu: 0.40, mem: 0.5, cur: State{3, 1}, want: State{3, 1}, reason: "no rule fires"},
		{name: "scale-out beats scale-in", cpu: 0.05, mem: 0.95, cur: State{3, 0}, want: State{4, 0}, reason: "memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			if b == (Bounds{}) {
				b = bounds()
			}
			in := Input{Now: t0, Current: tc.cur, History: steady(3, 100, tc.cpu, tc.mem, tc.rt, tc.cur), Ladder: DefaultLadder(), Bounds: b}
			d := Reactive{Rules: DefaultRules()}.Decide(in)
			require.Equal(t, tc.want, d.To)
			require.Contains(t, d.Reason, tc.reason)
			require.Equal(t, SourceReactive, d.Source)
		})
	}
}

func TestReactiveWindowAverages(t *testing.T) {
	r := DefaultRules()
	r.Window = 3
	h := steady(5, 100, 0.5, 0.3, 0, State{2, 0})
	h[4].CPU = 0.95 // one hot minute: mean of the last three is 65 %
	d := Reactive{Rules: r}.Decide(Input{Now: t0, Current: State{2, 0}, History: h, Ladder: DefaultLadder(), Bounds: bounds()})
	require.False(t, d.Changed(), d.Reason)
	r.Window = 1
	d = Reactive{Rules: r}.Decide(Input{Now: t0, Current: State{2, 0}, History: h, Ladder: DefaultLadder(), Bounds: bounds()})
	require.Equal(t, State{3, 0}, d.To)
}

func TestRulesValidate(t *testing.T) {
	require.NoError(t, DefaultRules().Validate())
	for name, mut := range map[string]func(*Rules){
		"window":         func(r *Rules) { r.Window = 0 },
		"count inverted": func(r *Rules) { r.CountDownCPU = 0.8 },
		"size inverted":  func(r *Rules) { r.SizeDownCPU = 0.9 },
		"memory":         func(r *Rules) { r.CountUpMemory = 1.5 },
		"request time":   func(r *Rules) { r.SizeUpRequestTime = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			r := DefaultRules()
			mut(&r)
			require.Error(t, r.Validate())
		})
	}
}

func TestForecasters(t *testing.T) {
	ramp := make([]float64, 125)
	flat := make([]float64, 125)
	for i := range ramp {
		ramp[i] = 100 + 4*float64(i)
		flat[i] = 300
	}
	for _, tc := range []struct {
		name   string
		f      Forecaster
		series []float64
		// want15 is the expected value 15 steps ahead, within tol.
		want15, tol float64
	}{
		{name: "undamped holt continues a ramp", f: Holt{Alpha: 0.3, Beta: 0.05, Phi: 1}, series: ramp, want15: 100 + 4*139, tol: 1},
		{name: "linear continues a ramp", f: Linear{Window: 30}, series: ramp, want15: 100 + 4*139, tol: 1e-6},
		{name: "holt on a flat series", f: DefaultHolt(), series: flat, want15: 300, tol: 1e-6},
		{name: "last value", f: LastValue{}, series: ramp, want15: 100 + 4*124, tol: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, sigma, err := tc.f.Forecast(tc.series, 15)
			require.NoError(t, err)
			require.Len(t, path, 15)
			require.InDelta(t, tc.want15, path[14], tc.tol)
			require.GreaterOrEqual(t, sigma, 0.0)
			require.NotEmpty(t, tc.f.Name())
		})
	}
	t.Run("damped holt rises on a ramp, less than the line", func(t *testing.T) {
		path, _, err := DefaultHolt().Forecast(ramp, 15)
		require.NoError(t, err)
		require.Greater(t, path[14], path[0])
		require.Greater(t, path[14], ramp[124])
		require.Less(t, path[14], 100+4*139.0)
	})
	t.Run("never negative", func(t *testing.T) {
		down := make([]float64, 125)
		for i := range down {
			down[i] = 500 - 4*float64(i)
		}
		for _, f := range []Forecaster{DefaultHolt(), Linear{}, LastValue{}} {
			path, _, err := f.Forecast(down, 15)
			require.NoError(t, err)
			for _, v := range path {
				require.GreaterOrEqual(t, v, 0.0, f.Name())
			}
		}
	})
	t.Run("short series and bad parameters", func(t *testing.T) {
		for _, f := range []Forecaster{DefaultHolt(), Linear{}, LastValue{}} {
			_, _, err := f.Forecast([]float64{1, 2}, 15)
			require.ErrorIs(t, err, errShort)
		}
		_, _, err := Holt{Alpha: 1.5, Beta: 0.1, Phi: 1}.Forecast(ramp, 3)
		require.ErrorContains(t, err, "out of range")
	})
}

func TestShortfall(t *testing.T) {
	require.InDelta(t, 50.0, shortfall(150, 0, 100), 1e-9)
	require.InDelta(t, 0.0, shortfall(50, 0, 100), 1e-9)
	// At the mean the expected shortfall is σ/√(2π).
	require.InDelta(t, 10/math.Sqrt(2*math.Pi), shortfall(100, 10, 100), 1e-9)
	// Far above capacity it tends to mean − capacity.
	require.InDelta(t, 100.0, shortfall(200, 10, 100), 1e-6)
}

func TestLearnCapacity(t *testing.T) {
	l := DefaultLadder()
	for _, tc := range []struct {
		name string
		h    []Sample
		want float64
		ok   bool
	}{
		{name: "unsaturated", h: steady(10, 300, 0.5, 0.3, 0, State{2, 0}), want: 300, ok: true},
		{name: "medium counts double", h: steady(10, 600, 0.5, 0.3, 0, State{2, 1}), want: 300, ok: true},
		{name: "saturated minutes are skipped", h: steady(10, 900, 1, 0.3, 0, State{1, 0})},
		{name: "idle minutes are skipped", h: steady(10, 3, 0.01, 0.3, 0, State{1, 0})},
		{name: "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := LearnCapacity(tc.h, l)
			require.Equal(t, tc.ok, ok)
			require.InDelta(t, tc.want, got, 1e-9)
		})
	}
}

// rampHistory is n minutes of demand growing by slope per minute, served by
// running with 300 requests per minute per unit.
func rampHistory(n int, start, slope float64, running State) []Sample {
	l := DefaultLadder()
	h := make([]Sample, n)
	for i := range h {
		req := max(1, start+slope*float64(i))
		h[i] = Sample{At: t0.Add(time.Duration(i) * time.Minute), Requests: req, CPU: min(1, req/(300*l.Units(running))), Memory: 0.4, Running: running}
	}
	return h
}

func TestProactive(t *testing.T) {
	b := Bounds{MinCount: 1, MaxCount: 10, MinSize: 0, MaxSize: 2}
	for _, tc := range []struct {
		name    string
		mod     func(p *Proactive)
		h       []Sample
		cur     State
		ok      bool
		changed bool
		check   func(t *testing.T, d Decision)
		reason  string
	}{
		{name: "needs history", h: rampHistory(10, 100, 0, State{1, 0}), cur: State{1, 0}, reason: "needs 30"},
		{name: "needs a learned capacity", h: steady(40, 500, 1, 0.4, 0, State{1, 0}), cur: State{1, 0}, reason: "not learned"},
		{name: "a ramp buys several instances at once", h: rampHistory(60, 100, 15, State{4, 0}), cur: State{4, 0}, ok: true, changed: true,
			check: func(t *testing.T, d Decision) {
				// Demand is at 985 and rising: 6 units at 60 %.
				require.GreaterOrEqual(t, DefaultLadder().Units(d.To), 6.0)
				require.Greater(t, d.Forecast, 985.0)
			}},
		{name: "falling load scales in", h: rampHistory(60, 700, -10, State{4, 0}), cur: State{4, 0}, ok: true, changed: true,
			check: func(t *testing.T, d Decision) { require.Less(t, DefaultLadder().Units(d.To), 4.0) }},
		{name: "the lookback keeps capacity after a peak", mod: func(p *Proactive) { p.ScaleInLookback = 60 },
			h: rampHistory(60, 700, -10, State{4, 0}), cur: State{4, 0}, ok: true},
		{name: "steady right-sized load holds", h: rampHistory(60, 480, 0, State{3, 0}), cur: State{3, 0}, ok: true, reason: "within 10 %"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultProactive()
			if tc.mod != nil {
				tc.mod(&p)
			}
			d, ok := p.propose(Input{Now: t0, Current: tc.cur, History: tc.h, Ladder: DefaultLadder(), Bounds: b})
			require.Equal(t, tc.ok, ok, d.Reason)
			require.Equal(t, tc.changed, d.Changed(), d.Reason)
			require.Contains(t, d.Reason, tc.reason)
			require.True(t, b.Contains(d.To))
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

func TestProactiveValidate(t *testing.T) {
	require.NoError(t, DefaultProactive().Validate())
	for name, mut := range map[string]func(*Proactive){
		"no forecaster": func(p *Proactive) { p.Forecaster = nil },
		"history":       func(p *Proactive) { p.MinHistory = 200 },
		"horizon":       func(p *Proactive) { p.Horizon = 0 },
		"users":         func(p *Proactive) { p.RequestsPerUser = 0 },
		"utilisation":   func(p *Proactive) { p.SafeUtilisation = 1.2 },
		"margin":        func(p *Proactive) { p.Margin = 1 },
	} {
		t.Run(name, func(t *testing.T) {
			p := DefaultProactive()
			mut(&p)
			require.Error(t, p.Validate())
		})
	}
}

func TestCombinedMerge(t *testing.T) {
	c := DefaultCombined()
	b := Bounds{MinCount: 1, MaxCount: 10, MinSize: 0, MaxSize: 2}
	memHot := rampHistory(60, 300, 0, State{3, 0})
	for i := range memHot {
		memHot[i].Memory = 0.95
	}
	// Demand rising to 296 req/min on 2 units (50 % CPU), but the last
	// minute's CPU reads 5 %: the rules want −1, the forecast needs both.
	lowButRising := rampHistory(60, 60, 4, State{2, 0})
	lowButRising[len(lowButRising)-1].CPU = 0.05
	for _, tc := range []struct {
		name   string
		h      []Sample
		cur    State
		source Source
		want   func(t *testing.T, d Decision)
		reason string
	}{
		{name: "rules alone without a forecast", h: rampHistory(5, 280, 0, State{1, 0}), cur: State{1, 0}, source: SourceReactive,
			want:   func(t *testing.T, d Decision) { require.Equal(t, State{2, 0}, d.To) },
			reason: "so the rules alone decide"},
		{name: "reactive scale-out above the forecast wins", h: memHot, cur: State{3, 0}, source: SourceReactive,
			want:   func(t *testing.T, d Decision) { require.Equal(t, State{4, 0}, d.To) },
			reason: "the forecast asked only for"},
		{name: "reactive scale-in vetoed by a rising forecast", h: lowButRising, cur: State{2, 0}, source: SourceProactive,
			want:   func(t *testing.T, d Decision) { require.Equal(t, State{2, 0}, d.To) },
			reason: "overrides the rules"},
		{name: "forecast scales out past the rules' one step", h: rampHistory(60, 100, 10, State{2, 0}), cur: State{2, 0}, source: SourceProactive,
			want: func(t *testing.T, d Decision) { require.Greater(t, DefaultLadder().Units(d.To), 3.0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := c.Decide(Input{Now: t0, Current: tc.cur, History: tc.h, Ladder: DefaultLadder(), Bounds: b})
			require.Equal(t, tc.source, d.Source, d.Reason)
			tc.want(t, d)
			require.Contains(t, d.Reason, tc.reason)
		})
	}
}

func TestHPA(t *testing.T) {
	p := DefaultHPA()
	b := Bounds{MinCount: 1, MaxCount: 20, MinSize: 0, MaxSize: 2}
	at := func(cpus ...float64) []Sample {
		h := make([]Sample, len(cpus))
		for i, c := range cpus {
			h[i] = Sample{At: t0.Add(time.Duration(i) * time.Minute), CPU: c, Running: State{4, 0}}
		}
		return h
	}
	for _, tc := range []struct {
		name string
		h    []Sample
		want int
	}{
		{name: "within tolerance", h: at(0.64), want: 4},
		{name: "proportional scale-out", h: at(0.9), want: 6}, // ceil(4 × 0.9/0.6)
		{name: "saturated", h: at(1.0), want: 7},              // ceil(4 × 1/0.6)
		{name: "scale-in after a quiet window", h: at(0.3, 0.3, 0.3, 0.3, 0.3, 0.3), want: 2},
		{name: "scale-in held by a busy minute in the window", h: at(0.3, 0.3, 0.45, 0.3, 0.3), want: 3},
		{name: "busy minute older than the window", h: at(0.9, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3), want: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.h[len(tc.h)-1].At.Add(time.Minute)
			d := p.Decide(Input{Now: now, Current: State{4, 0}, History: tc.h, Ladder: DefaultLadder(), Bounds: b})
			require.Equal(t, tc.want, d.To.Count, d.Reason)
			require.Equal(t, 0, d.To.Size)
		})
	}
	require.Error(t, HPA{TargetCPU: 0}.Validate())
}

// scripted proposes whatever its function returns, for the controller's
// guarantees.
type scripted func(in Input) State

func (s scripted) Decide(in Input) Decision {
	return Decision{At: in.Now, From: in.Current, To: s(in), Source: "scripted", Reason: "scripted"}
}

func TestControllerInterval(t *testing.T) {
	up := scripted(func(in Input) State { return State{in.Current.Count + 1, in.Current.Size} })
	c, err := NewController(up, DefaultLadder(), bounds(), 25*time.Minute, time.Time{})
	require.NoError(t, err)
	h := steady(1, 100, 0.5, 0.3, 0, State{1, 0})

	d := c.Step(t0, State{1, 0}, h)
	require.Equal(t, State{2, 0}, d.To)
	d = c.Step(t0.Add(24*time.Minute), State{2, 0}, h)
	require.False(t, d.Changed())
	require.Equal(t, SourceInterval, d.Source)
	require.Contains(t, d.Reason, "minimum interval is 25m0s")
	d = c.Step(t0.Add(25*time.Minute), State{2, 0}, h)
	require.Equal(t, State{3, 0}, d.To)
	require.Equal(t, t0.Add(25*time.Minute), c.LastOperation())
}

func TestControllerBounds(t *testing.T) {
	wild := scripted(func(in Input) State { return State{99, 7} })
	c, err := NewController(wild, DefaultLadder(), bounds(), time.Hour, t0)
	require.NoError(t, err)
	h := steady(1, 100, 0.5, 0.3, 0, State{1, 0})

	// A proposal outside the bounds is limited to them (once the interval allows).
	d := c.Step(t0.Add(time.Hour), State{1, 0}, h)
	require.Equal(t, State{5, 2}, d.To)
	require.Contains(t, d.Reason, "limited to 5×large")

	// A state outside the bounds (the operator lowered them) comes back at
	// once, interval or not.
	d = c.Step(t0.Add(time.Hour+time.Minute), State{8, 0}, h)
	require.Equal(t, SourceBounds, d.Source)
	require.Equal(t, State{5, 0}, d.To)
}

func TestNewControllerRejects(t *testing.T) {
	_, err := NewController(Reactive{Rules: DefaultRules()}, DefaultLadder(), Bounds{MinCount: 0}, time.Minute, time.Time{})
	require.ErrorContains(t, err, "min count")
	_, err = NewController(Reactive{Rules: DefaultRules()}, DefaultLadder(), bounds(), -time.Minute, time.Time{})
	require.ErrorContains(t, err, "negative")
	_, err = NewController(Reactive{Rules: Rules{}}, DefaultLadder(), bounds(), time.Minute, time.Time{})
	require.Error(t, err)
	_, err = NewController(Combined{Reactive: Reactive{Rules: DefaultRules()}}, DefaultLadder(), bounds(), time.Minute, time.Time{})
	require.ErrorContains(t, err, "forecaster")
}

// TestControllerProperties drives every policy, and one that proposes at
// random, with random metrics and checks the two guarantees: the state never
// leaves the bounds and no two operations are closer than the interval.
func TestControllerProperties(t *testing.T) {
	random := func(rng *rand.Rand) Policy {
		return scripted(func(in Input) State { return State{rng.IntN(12) - 2, rng.IntN(5) - 1} })
	}
	for _, tc := range []struct {
		name   string
		policy func(rng *rand.Rand) Policy
	}{
		{name: "random proposals", policy: random},
		{name: "reactive", policy: func(*rand.Rand) Policy { return Reactive{Rules: DefaultRules()} }},
		{name: "combined", policy: func(*rand.Rand) Policy { return DefaultCombined() }},
		{name: "hpa", policy: func(*rand.Rand) Policy { return DefaultHPA() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := range uint64(20) {
				rng := rand.New(rand.NewPCG(seed, 15))
				b := Bounds{MinCount: 1 + rng.IntN(3), MinSize: rng.IntN(2)}
				b.MaxCount = b.MinCount + rng.IntN(6)
				b.MaxSize = b.MinSize + rng.IntN(3-b.MinSize)
				interval := time.Duration(rng.IntN(40)) * time.Minute
				c, err := NewController(tc.policy(rng), DefaultLadder(), b, interval, time.Time{})
				require.NoError(t, err)
				cur := b.Clamp(State{Count: 1, Size: 0})
				var h []Sample
				var last time.Time
				for m := range 600 {
					now := t0.Add(time.Duration(m) * time.Minute)
					h = append(h, Sample{At: now, Requests: rng.Float64() * 2000, CPU: rng.Float64(), Memory: rng.Float64(),
						RequestTime: time.Duration(rng.IntN(8000)) * time.Millisecond, Running: cur})
					if len(h) > 125 {
						h = h[1:]
					}
					d := c.Step(now, cur, h)
					require.Equal(t, cur, d.From)
					require.True(t, b.Contains(d.To), "seed %d minute %d: %v outside %+v", seed, m, d.To, b)
					require.NotEmpty(t, d.Reason)
					if d.Changed() {
						if !last.IsZero() {
							require.GreaterOrEqual(t, now.Sub(last), interval, "seed %d minute %d: %s", seed, m, d.Reason)
						}
						last = now
						cur = d.To
					}
				}
			}
		})
	}
}
