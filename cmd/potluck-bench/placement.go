package main

import (
	"context"
	"fmt"
	"strconv"

	"potluck/bench/placement"
	"potluck/internal/cli"
)

// runPlacement is `potluck-bench placement`: the placement simulator.
func runPlacement(ctx context.Context, args []string, env cli.Env) error {
	stdout := env.Stdout
	def := placement.DefaultConfig()
	fs := cli.NewFlagSet("potluck-bench placement", "Usage: potluck-bench placement [flags]\n\n"+`potluck-bench placement replays streams of installation requests (Poisson
arrivals, exponential lifetimes, mixed sizes, requirements and spread
constraints) over simulated heterogeneous fleets through the real scheduler
and FSM, for the spread policy and the pack policy, and prints denials, Backs
left free, fragmentation of free capacity and hot Backs (medians over seeds).
Every placement is checked against its request; a violation fails the run.
The workload is documented in docs/benchmarks.md.`, `Example:
  potluck-bench placement --seeds 3 --hosts 50 --loads 0.7,0.9`)
	var hosts, loads cli.StringList
	fs.IntVar(&def.Seeds, "seeds", def.Seeds, "request streams per fleet size and load (results are medians over them)")
	fs.Var(&hosts, "hosts", "fleet sizes, comma-separated (default 20,50,100)")
	fs.Var(&loads, "loads", "offered CPU loads as shares of the fleet's CPU, comma-separated (default 0.5,0.7,0.85,0.95)")
	fs.IntVar(&def.RequestsPerHost, "requests-per-host", def.RequestsPerHost, "requests per stream, per host of the fleet")
	fs.Float64Var(&def.Warmup, "warmup", def.Warmup, "share of each stream replayed before metrics count")
	fs.IntVar(&def.Parallel, "parallel", def.Parallel, "simulations run at once")
	fs.BoolVar(&def.ThroughFSM, "fsm", def.ThroughFSM, "commit every decision through the real FSM, whose Apply re-checks every invariant (about 3x slower)")
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	var err error
	if len(hosts) > 0 {
		if def.Hosts, err = numbers("hosts", hosts, strconv.Atoi); err != nil {
			return err
		}
	}
	if len(loads) > 0 {
		if def.Loads, err = numbers("loads", loads, parseFloat); err != nil {
			return err
		}
	}
	sum, err := placement.Run(ctx, def, stdout)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, sum.Line())
	return err
}
