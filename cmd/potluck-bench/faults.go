package main

import (
	"context"
	"time"

	"potluck/bench/faults"
	"potluck/internal/cli"
)

// runFaults is `potluck-bench faults`: the data plane's fault benchmark.
func runFaults(ctx context.Context, args []string, env cli.Env) error {
	fs := cli.NewFlagSet("potluck-bench faults", "Usage: potluck-bench faults [flags]\n\n"+`potluck-bench faults starts a make-demo cluster of real processes on
loopback (3 potluck-core, 1 potluck-front, 2 potluck-back, the sample app on 2
instances in Docker), sends open-loop keep-alive GETs through the Front at a
fixed rate, and in turn: docker-kills one instance's container, kill -9s one
potluck-back and restarts it, kill -9s the potluck-front and restarts it
identically, then does the same with every core node killed first (they
come back at the end of the window). Each scenario's window lasts --scenario-seconds and then until
both instances answer again. Per scenario it prints ok and failed requests,
latency from each request's scheduled start (p50, p99, max) and the longest
gap without a success. Requests lost while the Front process itself is down
(in flight in it, or sent while nothing listens) are counted apart. The
last line reads "bench-faults: N failed requests, longest gap X.X s".
Needs a Docker Engine (bash scripts/docker-up.sh) and, without --bin-dir,
the go tool and this repository. Everything the run starts is removed at
the end, also after Ctrl-C.`, `Example (the short run in docs/benchmarks.md):
  potluck-bench faults --rate 100 --scenario-seconds 20`)
	cfg := faults.Config{}
	var scenarios, logLevel, logFormat string
	var seconds float64
	fs.Float64Var(&cfg.Rate, "rate", 150, "requests per second, sent on schedule whatever the answers (1-2000)")
	fs.Float64Var(&seconds, "scenario-seconds", 30, "each scenario's window before it waits for the cluster to be whole again (5-1800)")
	fs.DurationVar(&cfg.LeadIn, "lead-in", 3*time.Second, "time into each window before its fault")
	fs.DurationVar(&cfg.Settle, "settle", 90*time.Second, "longest wait, after a window, for both instances to answer again")
	fs.DurationVar(&cfg.BackDown, "back-down", 5*time.Second, "how long the killed potluck-back stays down before its restart")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "bound on one request from when it is sent")
	fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 1000, "most requests in flight; a request due while all are busy waits, and its latency shows it")
	fs.StringVar(&scenarios, "scenarios", "baseline,container,back,front,front-no-core", "scenarios to run, in order, comma-separated: baseline, container, back, front, front-no-core (the Front restarted while every core node is down)")
	fs.StringVar(&cfg.Image, "image", "", "the sample app's `docker save` tarball (default: build it now, as make app-image does)")
	fs.StringVar(&cfg.BinDir, "bin-dir", "", "directory holding potluck-core, potluck-front and potluck-back (default: go build them into the run directory)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the run directory (nodes' state and logs); a failed run keeps them anyway, an interrupted one does not")
	fs.StringVar(&logLevel, "log-level", "info", "progress log level on stderr: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "progress log format: text or json")
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	var err error
	if cfg.Scenarios, err = faults.ParseScenarios(scenarios); err != nil {
		return cli.Usagef("--scenarios: %v", err)
	}
	if seconds < 5 || seconds > 1800 {
		return cli.Usagef("--scenario-seconds %g outside [5, 1800]", seconds)
	}
	if cfg.Rate < 1 || cfg.Rate > 2000 {
		return cli.Usagef("--rate %g outside [1, 2000]", cfg.Rate)
	}
	cfg.Scenario = time.Duration(seconds * float64(time.Second))
	if cfg.Logger, err = cli.Logger(env.Stderr, logLevel, logFormat); err != nil {
		return err
	}
	res, err := faults.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return faults.WriteText(env.Stdout, res)
}
