package autoscale

import (
	"fmt"
	"io"
	"strings"
	"time"

	as "potluck/core/autoscale"
)

// Setting is one variation of a Config in a sweep.
type Setting struct {
	Name  string
	Apply func(*Config)
}

// SweepRow is one setting's outcome.
type SweepRow struct {
	Setting                             string
	MeanGain, Worst                     float64
	Reactive, Combined, HPA             float64 // total cost of the seven single profiles, USD
	OpsReactive, OpsCombined            float64
	LostReactive, LostCombined, LostHPA float64 // users, over the seven
}

// Sweeps are the named sweeps `potluck-bench autoscale --sweep` knows.
func Sweeps() map[string][]Setting {
	interval := func(m int) Setting {
		return Setting{Name: fmt.Sprintf("min interval %d min", m), Apply: func(c *Config) { c.MinInterval = time.Duration(m) * time.Minute }}
	}
	fc := func(f as.Forecaster) Setting {
		return Setting{Name: f.Name(), Apply: func(c *Config) { c.Proactive.Forecaster = f }}
	}
	noise := func(n float64) Setting {
		return Setting{Name: fmt.Sprintf("noise σ %.2f", n), Apply: func(c *Config) { c.Noise = n }}
	}
	window := func(w int) Setting {
		return Setting{Name: fmt.Sprintf("rules window %d min", w), Apply: func(c *Config) { c.Rules.Window = w }}
	}
	return map[string][]Setting{
		"interval": {interval(1), interval(5), interval(10), interval(15), interval(25), interval(40)},
		"forecaster": {
			fc(as.DefaultHolt()), fc(as.Holt{Alpha: 0.2, Beta: 0.05, Phi: 0.9}), fc(as.Holt{Alpha: 0.5, Beta: 0.2, Phi: 0.98}),
			fc(as.Linear{Window: 15}), fc(as.Linear{Window: 30}), fc(as.Linear{Window: 45}), fc(as.Linear{Window: 125}), fc(as.LastValue{}),
		},
		"noise":  {noise(0), noise(0.05), noise(0.1), noise(0.2)},
		"window": {window(1), window(3), window(5)},
	}
}

// Sweep runs base once per setting.
func Sweep(base Config, settings []Setting) ([]SweepRow, error) {
	var out []SweepRow
	for _, s := range settings {
		cfg := base
		cfg.Trace = nil
		s.Apply(&cfg)
		rep, err := Run(cfg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Name, err)
		}
		row := SweepRow{Setting: s.Name}
		row.MeanGain, row.Worst = rep.MeanGain()
		for _, r := range rep.Rows {
			if r.Profile == "All data" {
				continue // the others concatenated; counting it would count them twice
			}
			row.Reactive += r.Outcomes[Reactive].Cost
			row.Combined += r.Outcomes[Combined].Cost
			row.HPA += r.Outcomes[HPA].Cost
			row.OpsReactive += r.Outcomes[Reactive].Ops
			row.OpsCombined += r.Outcomes[Combined].Ops
			row.LostReactive += r.Outcomes[Reactive].LostUsers
			row.LostCombined += r.Outcomes[Combined].LostUsers
			row.LostHPA += r.Outcomes[HPA].LostUsers
		}
		out = append(out, row)
	}
	return out, nil
}

// WriteSweep prints a sweep as Markdown.
func WriteSweep(w io.Writer, name string, rows []SweepRow) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Sweep %q (costs, operations and lost users: totals over the seven single profiles; gains over all eight rows):\n\n", name)
	b.WriteString("| setting | reactive $ | combined $ | HPA $ | mean gain | worst profile | ops R/C | lost users R/C/H |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.1f %% | %.1f %% | %.0f/%.0f | %.0f/%.0f/%.0f |\n",
			r.Setting, r.Reactive, r.Combined, r.HPA, 100*r.MeanGain, 100*r.Worst, r.OpsReactive, r.OpsCombined,
			r.LostReactive, r.LostCombined, r.LostHPA)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}
