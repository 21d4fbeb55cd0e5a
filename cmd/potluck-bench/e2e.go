package main

import (
	"context"
	"time"

	"potluck/bench/e2e"
	"potluck/internal/cli"
)

// runE2E is `potluck-bench e2e`: the real data path against NGINX.
func runE2E(ctx context.Context, args []string, env cli.Env) error {
	fs := cli.NewFlagSet("potluck-bench e2e", "Usage: potluck-bench e2e [flags]\n\n"+`potluck-bench e2e measures the product's data path against NGINX. It starts
a cluster of real processes on loopback (1 potluck-core, 1 potluck-front, 2
potluck-backs) with two apps on both Backs in Docker: the sample app (as make
demo deploys it) and a fasthttp app (bench/appimage/fast), so the containers
are not the ceiling. In front of the same containers it runs NGINX (upstream
keep-alive, as make bench-nginx) and a standalone potluck-front; a second
Front with --pipeline 0 (front-mesh-pool: the keep-alive pool only, where
the cluster's Front pipelines to the Backs' gateways) joins unless
--mesh-pipeline -1 (or N: that Front with --pipeline N). For each app, wrk loads the
contenders in turn, the order rotating every round: req/s, p50, p99
and CPU time per request of each contender's processes (for the Front over
the mesh: the Front and both Backs), of docker-proxy and of the containers,
per round and as medians with the ratios to NGINX. Then the latency at one
connection (wrk -c1) through each, and single-stream uploads and downloads
of --stream-size through each path and to a published port directly. The last line reads "bench-e2e: mesh/nginx throughput X.XXx, p99
Y.YYx" (sample app). Needs a Docker Engine (bash scripts/docker-up.sh), nginx
and wrk (scripts/install-deps.sh --bench) and, without --bin-dir, the go tool
and this repository. Everything the run starts is removed at the end.`, `Example (what make bench-e2e runs):
  potluck-bench e2e --rounds 3 --duration 3s`)
	cfg := e2e.Config{}
	var logLevel, logFormat string
	stream := cli.Size(64 << 20)
	fs.IntVar(&cfg.Rounds, "rounds", 3, "rounds per app; each runs every contender once, in rotating order (1-20)")
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Second, "one wrk run (1s-1m)")
	fs.IntVar(&cfg.Connections, "connections", 64, "wrk connections (1-10000)")
	fs.IntVar(&cfg.Threads, "threads", 2, "wrk threads (1-64)")
	fs.Var(&stream, "stream-size", "bytes of one single-stream upload and download, e.g. 64MiB (0: skip the streams; at most 1GiB)")
	fs.Float64Var(&cfg.SampleCPUs, "sample-cpus", 0.25, "CPUs granted to each sample app container (make demo: 0.25)")
	fs.Float64Var(&cfg.FastCPUs, "fast-cpus", 1, "CPUs granted to each fast app container")
	fs.StringVar(&cfg.Image, "image", "", "the sample app's `docker save` tarball (default: build it now)")
	fs.StringVar(&cfg.FastImage, "fast-image", "", "the fast app's `docker save` tarball (default: build it now)")
	fs.StringVar(&cfg.BinDir, "bin-dir", "", "directory holding potluck-core, potluck-front and potluck-back (default: go build them into the run directory)")
	fs.StringVar(&cfg.Nginx, "nginx", "nginx", "nginx binary")
	fs.StringVar(&cfg.Wrk, "wrk", "wrk", "wrk binary")
	fs.IntVar(&cfg.MeshPipeline, "mesh-pipeline", 0, "the second Front's --pipeline (pipelined connections per instance; 0: keep-alive pool only, front-mesh-pool); -1: no second Front (-1-64)")
	fs.StringVar(&cfg.ProfileDir, "profile-dir", "", "also write CPU profiles of the Front and both Backs under the fast app's load through the mesh, and during single streams through it, here")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the run directory (nodes' state and logs, configs); a failed run keeps it anyway")
	fs.StringVar(&logLevel, "log-level", "info", "progress log level on stderr: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "progress log format: text or json")
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	switch {
	case cfg.Rounds < 1 || cfg.Rounds > 20:
		return cli.Usagef("--rounds %d outside [1, 20]", cfg.Rounds)
	case cfg.Duration < time.Second || cfg.Duration > time.Minute:
		return cli.Usagef("--duration %v outside [1s, 1m]", cfg.Duration)
	case cfg.Connections < 1 || cfg.Connections > 10000:
		return cli.Usagef("--connections %d outside [1, 10000]", cfg.Connections)
	case cfg.Threads < 1 || cfg.Threads > 64:
		return cli.Usagef("--threads %d outside [1, 64]", cfg.Threads)
	case stream > 1<<30:
		return cli.Usagef("--stream-size %d: at most 1GiB", stream)
	case cfg.MeshPipeline < -1 || cfg.MeshPipeline > 64:
		return cli.Usagef("--mesh-pipeline %d outside [-1, 64]", cfg.MeshPipeline)
	case cfg.SampleCPUs <= 0 || cfg.FastCPUs <= 0 || cfg.SampleCPUs > 1 || cfg.FastCPUs > 1:
		return cli.Usagef("--sample-cpus and --fast-cpus: above 0, at most 1 (each Back declares 2)")
	}
	cfg.StreamBytes = int64(stream)
	if stream == 0 {
		cfg.StreamBytes = -1
	}
	var err error
	if cfg.Logger, err = cli.Logger(env.Stderr, logLevel, logFormat); err != nil {
		return err
	}
	cfg.Out = env.Stdout
	_, err = e2e.Run(ctx, cfg)
	return err
}
