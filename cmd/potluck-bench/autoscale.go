package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	sim "potluck/bench/autoscale"
	as "potluck/core/autoscale"
	"potluck/internal/cli"
)

// runAutoscale is `potluck-bench autoscale`: the autoscaling simulator
// (bench/autoscale) printing the seed's table.
func runAutoscale(ctx context.Context, args []string, env cli.Env) error {
	stdout, stderr := env.Stdout, env.Stderr
	cfg := sim.DefaultConfig()
	fs := cli.NewFlagSet("potluck-bench autoscale", "Usage: potluck-bench autoscale [flags]\n\n"+`potluck-bench autoscale replays load profiles shaped like the seed's eight
through core/autoscale's decision code on a simulated installation (capacity
per instance, M/M/c request time with a queue that carries overload from
minute to minute, users lost to slow requests, prices, scaling delays) and
prints the seed's table: per profile the cost (infrastructure + $0.00027 per
lost user) of reactive-only and of combined, the gain, and an HPA-style
policy. docs/autoscaling.md explains the model. It is a simulation: it takes
seconds and needs nothing running.`, `Examples:
  potluck-bench autoscale
  potluck-bench autoscale --regime potluck --sweep interval
  potluck-bench autoscale --profile "Single peak" --seeds 1 --trace`)
	var regime, forecaster, sweep string
	var startDelay, resizeDelay time.Duration
	var seeds int
	var profiles cli.StringList
	var trace bool
	fs.StringVar(&regime, "regime", "seed", "scaling delays: seed (an instance starts in 5 min, a resize takes 10, like the seed's VMs) or potluck (1 and 2 min, containers)")
	fs.DurationVar(&startDelay, "start-delay", 0, "override the regime's time for a new instance to serve")
	fs.DurationVar(&resizeDelay, "resize-delay", 0, "override the regime's time for a change of size")
	fs.DurationVar(&cfg.MinInterval, "min-interval", cfg.MinInterval, "minimum time between two operations, reactive and combined")
	fs.DurationVar(&cfg.HPAInterval, "hpa-interval", cfg.HPAInterval, "minimum time between two operations of the HPA-style policy")
	fs.Float64Var(&cfg.HPA.TargetCPU, "hpa-target", cfg.HPA.TargetCPU, "the HPA-style policy's CPU target (0..1)")
	fs.StringVar(&forecaster, "forecaster", "holt", "the combined policy's forecaster: holt, linear (OLS over the last 30 points) or last (last value)")
	fs.IntVar(&seeds, "seeds", len(cfg.Seeds), "noise seeds (1..N); costs are means over them")
	fs.Float64Var(&cfg.Noise, "noise", cfg.Noise, "σ of the profiles' multiplicative log-normal noise")
	fs.Var(&profiles, "profile", "simulate only these profiles (repeatable or comma-separated): "+strings.Join(sim.ProfileNames(), ", "))
	fs.StringVar(&sweep, "sweep", "", "first print a sweep over one setting: "+strings.Join(sweepNames(), ", "))
	fs.BoolVar(&trace, "trace", false, "print every scaling operation of the first seed, with its reason, on stderr")
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	switch regime {
	case "seed":
		cfg.Model = sim.DefaultModel()
	case "potluck":
		cfg.Model = sim.PotluckModel()
	default:
		return cli.Usagef("--regime %q: use seed or potluck", regime)
	}
	if startDelay > 0 {
		cfg.Model.StartDelay = startDelay
	}
	if resizeDelay > 0 {
		cfg.Model.ResizeDelay = resizeDelay
	}
	switch forecaster {
	case "holt":
		cfg.Proactive.Forecaster = as.DefaultHolt()
	case "linear":
		cfg.Proactive.Forecaster = as.Linear{Window: 30}
	case "last":
		cfg.Proactive.Forecaster = as.LastValue{}
	default:
		return cli.Usagef("--forecaster %q: use holt, linear or last", forecaster)
	}
	if seeds < 1 || seeds > 100 {
		return cli.Usagef("--seeds %d: use 1..100", seeds)
	}
	cfg.Seeds = nil
	for s := range seeds {
		cfg.Seeds = append(cfg.Seeds, uint64(s+1))
	}
	for _, p := range profiles {
		if !slices.Contains(sim.ProfileNames(), p) {
			return cli.Usagef("--profile %q: use one of %s", p, strings.Join(sim.ProfileNames(), ", "))
		}
	}
	cfg.Profiles = profiles
	if trace {
		cfg.Trace = func(profile, policy string, d as.Decision) {
			fmt.Fprintf(stderr, "%s %-8s %s %s → %s (%s): %s\n", d.At.Format("Jan 2 15:04"), policy, profile,
				cfg.Model.Ladder.Label(d.From), cfg.Model.Ladder.Label(d.To), d.Source, d.Reason)
		}
	}
	if sweep != "" {
		settings, ok := sim.Sweeps()[sweep]
		if !ok {
			return cli.Usagef("--sweep %q: use one of %s", sweep, strings.Join(sweepNames(), ", "))
		}
		rows, err := sim.Sweep(cfg, settings)
		if err != nil {
			return err
		}
		if err := sim.WriteSweep(stdout, sweep, rows); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rep, err := sim.Run(cfg)
	if err != nil {
		return err
	}
	return sim.WriteTable(stdout, rep)
}

func sweepNames() []string {
	var names []string
	for n := range sim.Sweeps() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
