// Package autoscale is the autoscaling simulator behind `potluck-bench
// autoscale`: it replays synthetic load profiles shaped like the seed's
// eight (Savchuk & Kozachuk 2015) through core/autoscale's decision code on
// a documented model of an installation (capacity, queueing, lost users,
// prices, scaling delays) and prints the seed's table: the cost of
// reactive-only, of combined, the gain, and a Kubernetes-HPA-style policy
// for comparison.
package autoscale

import (
	"fmt"
	"time"

	as "potluck/core/autoscale"
)

// Config is one simulation: the model, the policies' settings and the
// seeds of the noise.
type Config struct {
	Model  Model
	Bounds as.Bounds
	// Start is the state every run starts from (the seed: one small VM).
	Start as.State
	// MinInterval applies to the reactive-only baseline and to combined
	// alike (the seed lists its 25 min only for combined; we give the
	// baseline the same controller so the comparison isolates the
	// forecast).
	MinInterval time.Duration
	// HPAInterval is the HPA policy's minimum interval (Kubernetes has
	// none beyond its stabilisation window).
	HPAInterval time.Duration
	Rules       as.Rules
	Proactive   as.Proactive
	HPA         as.HPA
	Seeds       []uint64
	// Noise is the σ of the profiles' multiplicative log-normal noise.
	Noise float64
	// Profiles restricts the run to these names (all when empty).
	Profiles []string
	// Trace, if set, sees every operation of the first seed's runs.
	Trace func(profile, policy string, d as.Decision)
}

// DefaultConfig is the table in docs/benchmarks.md: the seed's settings on
// the seed-regime model, five seeds.
func DefaultConfig() Config {
	m := DefaultModel()
	p := as.DefaultProactive()
	p.RequestsPerUser, p.LostUserPrice = m.RequestsPerUser, m.LostUserPrice
	return Config{
		Model:       m,
		Bounds:      as.Bounds{MinCount: 1, MaxCount: 10, MinSize: 0, MaxSize: len(m.Ladder) - 1},
		Start:       as.State{Count: 1, Size: 0},
		MinInterval: as.DefaultMinInterval,
		Rules:       as.DefaultRules(),
		Proactive:   p,
		HPA:         as.DefaultHPA(),
		Seeds:       []uint64{1, 2, 3, 4, 5},
		Noise:       0.05,
	}
}

// Outcome is one policy on one profile (means over the seeds).
type Outcome struct {
	Cost      float64 // infrastructure + lost users, USD
	Infra     float64 // USD
	LostUsers float64
	Ops       float64 // scaling operations
}

// run replays one profile through one controller.
func run(m Model, p Profile, c *as.Controller, start as.State, trace func(as.Decision)) Outcome {
	const keep = 125
	f := newFleet(m, start)
	var out Outcome
	var backlog float64
	history := make([]as.Sample, 0, 2*keep)
	t0 := time.Date(1998, 6, 10, 0, 0, 0, 0, time.UTC) // in the WorldCup98 trace's span
	for t, lambda := range p.Load {
		f.tick(t)
		units, count, st, memMB := f.running(t)
		mn := m.serve(lambda, backlog, units, count, memMB)
		backlog = mn.backlog
		out.Infra += f.pricePerMinute()
		out.LostUsers += mn.lostUsers
		if len(history) == cap(history) {
			history = append(history[:0], history[len(history)-keep+1:]...)
		}
		history = append(history, as.Sample{
			At: t0.Add(time.Duration(t) * time.Minute), Requests: lambda,
			CPU: mn.cpu, Memory: mn.memory, RequestTime: mn.reqTime, Running: st,
		})
		now := t0.Add(time.Duration(t+1) * time.Minute)
		if d := c.Step(now, f.commanded, history); d.Changed() {
			f.command(t+1, d.To)
			out.Ops++
			if trace != nil {
				trace(d)
			}
		}
	}
	out.Cost = out.Infra + out.LostUsers*m.LostUserPrice
	return out
}

// Policy names in reports.
const (
	Reactive = "reactive"
	Combined = "combined"
	HPA      = "hpa"
)

// Row is one profile's outcomes by policy.
type Row struct {
	Profile  string
	Steady   bool
	Minutes  int
	Outcomes map[string]Outcome
}

// Gain is (C_reactive − C_combined) / C_reactive, the seed's gain.
func (r Row) Gain() float64 {
	re, co := r.Outcomes[Reactive].Cost, r.Outcomes[Combined].Cost
	if re == 0 {
		return 0
	}
	return (re - co) / re
}

// Report is a whole simulation.
type Report struct {
	Config Config
	Rows   []Row
}

// MeanGain is the mean of the rows' gains; Worst the lowest.
func (r *Report) MeanGain() (mean, worst float64) {
	if len(r.Rows) == 0 {
		return 0, 0
	}
	worst = r.Rows[0].Gain()
	for _, row := range r.Rows {
		mean += row.Gain()
		worst = min(worst, row.Gain())
	}
	return mean / float64(len(r.Rows)), worst
}

func (cfg Config) controllers() (map[string]func() (*as.Controller, error), error) {
	if err := cfg.Model.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Seeds) == 0 {
		return nil, fmt.Errorf("autoscale sim: no seeds")
	}
	if cfg.Noise < 0 || cfg.Noise > 1 {
		return nil, fmt.Errorf("autoscale sim: noise %v: must be in [0, 1]", cfg.Noise)
	}
	l, b := cfg.Model.Ladder, cfg.Bounds
	return map[string]func() (*as.Controller, error){
		Reactive: func() (*as.Controller, error) {
			return as.NewController(as.Reactive{Rules: cfg.Rules}, l, b, cfg.MinInterval, time.Time{})
		},
		Combined: func() (*as.Controller, error) {
			return as.NewController(as.Combined{Reactive: as.Reactive{Rules: cfg.Rules}, Proactive: cfg.Proactive}, l, b, cfg.MinInterval, time.Time{})
		},
		HPA: func() (*as.Controller, error) {
			return as.NewController(cfg.HPA, l, b, cfg.HPAInterval, time.Time{})
		},
	}, nil
}

// Run simulates every profile under every policy for every seed.
func Run(cfg Config) (*Report, error) {
	ctrls, err := cfg.controllers()
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, n := range cfg.Profiles {
		want[n] = true
	}
	rep := &Report{Config: cfg}
	rows := map[string]int{} // profile name → index in rep.Rows
	for _, seed := range cfg.Seeds {
		for _, p := range Profiles(seed, cfg.Noise) {
			if len(want) > 0 && !want[p.Name] {
				continue
			}
			if err := CheckProfile(p); err != nil {
				return nil, err
			}
			i, ok := rows[p.Name]
			if !ok {
				i = len(rep.Rows)
				rows[p.Name] = i
				rep.Rows = append(rep.Rows, Row{Profile: p.Name, Steady: p.Steady, Minutes: len(p.Load), Outcomes: map[string]Outcome{}})
			}
			row := &rep.Rows[i]
			for name, mk := range ctrls {
				c, err := mk()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				var trace func(as.Decision)
				if cfg.Trace != nil && seed == cfg.Seeds[0] {
					trace = func(d as.Decision) { cfg.Trace(p.Name, name, d) }
				}
				o := run(cfg.Model, p, c, cfg.Start, trace)
				n := float64(len(cfg.Seeds))
				acc := row.Outcomes[name]
				acc.Cost += o.Cost / n
				acc.Infra += o.Infra / n
				acc.LostUsers += o.LostUsers / n
				acc.Ops += o.Ops / n
				row.Outcomes[name] = acc
			}
		}
	}
	if len(rep.Rows) == 0 {
		return nil, fmt.Errorf("autoscale sim: no profile matches %v (have %v)", cfg.Profiles, ProfileNames())
	}
	return rep, nil
}
