// Command nginxcmp is the `make bench-nginx` driver: it starts the same test
// backends for both proxies, runs NGINX (configured fairly: worker_processes
// auto, upstream keepalive, access_log off) and potluck-front with the
// equivalent config, drives them alternately with wrk for several rounds and
// prints req/s, p50 and p99 for each and the ratios. All traffic stays on
// 127.0.0.1; every run is bounded by --duration.
//
// `nginxcmp backend --addr A` runs one test backend (a fasthttp server with a
// 25-byte response), so backends live in their own processes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"potluck/internal/cli"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rawproxy" {
		if err := rawProxyMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "rawproxy:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "backend" {
		if err := backendMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		return
	}
	env := cli.OS()
	os.Exit(cli.Exit(env.Stderr, "nginxcmp", benchMain(os.Args[1:], env)))
}

// settings are the driver's flags.
type settings struct {
	frontBin    string
	nginxBin    string
	wrkBin      string
	rounds      int
	duration    time.Duration
	connections int
	threads     int
	backends    int
	keep        bool
	profile     string
	frontProcs  int
	baseline    bool
	pipeline    int
	pipeDepth   int
	profilePipe bool
}

func parseSettings(args []string, env cli.Env) (settings, error) {
	var s settings
	fs := cli.NewFlagSet("nginxcmp", `Usage: nginxcmp [flags]

Runs NGINX and potluck-front (and, by default, potluck-front with pipelined
backends and a ten-line fasthttp proxy) in front of the same backends, loads
them alternately with wrk and prints req/s, p50, p99, CPU and syscalls per
request for each, with the ratios to NGINX.`, "See docs/benchmarks.md (make bench-nginx).")
	fs.StringVar(&s.frontBin, "front", "bin/potluck-front", "potluck-front binary")
	fs.StringVar(&s.nginxBin, "nginx", "nginx", "nginx binary")
	fs.StringVar(&s.wrkBin, "wrk", "wrk", "wrk binary")
	fs.IntVar(&s.rounds, "rounds", 3, "rounds; each runs NGINX and potluck-front once, alternating who goes first")
	fs.DurationVar(&s.duration, "duration", 10*time.Second, "wrk duration per run")
	fs.IntVar(&s.connections, "connections", 64, "wrk connections")
	fs.IntVar(&s.threads, "threads", 2, "wrk threads")
	fs.IntVar(&s.backends, "backends", 2, "number of backends")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory (configs, logs)")
	fs.StringVar(&s.profile, "profile", "", "write a 10 s CPU profile of potluck-front under load to this file")
	fs.BoolVar(&s.baseline, "baseline", true, "also run the ten-line fasthttp proxy (rawproxy) as a third contender")
	fs.IntVar(&s.pipeline, "pipeline", 1, "also run potluck-front with backend_pool.pipeline set to this (pipelined backend connections) as the contender potluck-pipe; 0 skips it")
	fs.IntVar(&s.pipeDepth, "pipeline-depth", 0, "backend_pool.pipeline_depth for potluck-pipe; 0 = lb's default")
	fs.BoolVar(&s.profilePipe, "profile-pipe", false, "with --profile: profile potluck-pipe instead of potluck-front")
	fs.IntVar(&s.frontProcs, "front-gomaxprocs", 0, "GOMAXPROCS for potluck-front; 0 = Go's default (all cores)")
	if err := fs.Parse(args, env); err != nil {
		return s, err
	}
	if s.rounds < 1 || s.duration < time.Second || s.backends < 1 || s.connections < 1 || s.threads < 1 {
		return s, cli.Usagef("--rounds, --backends, --connections and --threads must be at least 1 and --duration at least 1s")
	}
	return s, nil
}

func benchMain(args []string, env cli.Env) error {
	s, err := parseSettings(args, env)
	if err != nil {
		return err
	}
	for _, bin := range []string{s.frontBin, s.nginxBin, s.wrkBin} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (run scripts/install-deps.sh --bench and make build): %w", bin, err)
		}
	}
	dir, err := os.MkdirTemp("", "potluck-bench-nginx-")
	if err != nil {
		return err
	}
	if !s.keep {
		defer os.RemoveAll(dir)
	} else {
		fmt.Println("work dir:", dir)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	r, err := startRig(ctx, s, dir)
	if err != nil {
		return err
	}
	printSetup(s)
	if err := warmUp(s, r); err != nil {
		return err
	}
	if s.profile != "" && s.profilePipe && s.pipeline > 0 {
		return profileFront(s, r.targets["potluck-pipe"], r.pipeAdmin)
	}
	if s.profile != "" {
		return profileFront(s, r.targets["potluck-front"], r.frontAdmin)
	}
	results, err := runRounds(s, r)
	if err != nil {
		return err
	}
	printSummary(s, results)
	return nil
}
