// Command potluck-bench measures Potluck the way the paper did and more:
//
//	potluck-bench table      the paper's Table 1 method against named targets
//	potluck-bench load       closed-loop load: req/s and latency percentiles
//	potluck-bench geo        the paper's geography simulated on local clusters
//	potluck-bench placement  spread vs pack placement, simulated
//	potluck-bench autoscale  the autoscaler on the seed's load profiles, simulated
//	potluck-bench faults     a real cluster under load while parts are killed
//	potluck-bench e2e        the data path through the mesh against NGINX, on a real cluster
//	potluck-bench fleet      the control plane with thousands of simulated hosts
//
// Every flag has a POTLUCK_* environment twin; see each subcommand's --help.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"potluck/bench/appimage"
	"potluck/bench/geo"
	"potluck/bench/load"
	"potluck/bench/table"
	"potluck/internal/cli"
	"potluck/internal/version"
)

const usage = `potluck-bench measures Potluck.

Usage:
  potluck-bench table --target NAME=URL[,host=HOST] ...   the paper's Table 1 method
  potluck-bench load  --url URL [--concurrency C] [--duration D | --count N]
  potluck-bench geo   [--scenario NAME=CLIENT_RTT/MESH_RTT ...]   simulated geography (needs Docker)
  potluck-bench placement [--seeds N] [--hosts 20,50] [--loads 0.7,0.95]   spread vs pack placement (simulated)
  potluck-bench autoscale [--regime seed|potluck] [--sweep NAME]   the autoscaler on the seed's load profiles (simulated)
  potluck-bench faults [--rate R] [--scenario-seconds S]   a real cluster under load while parts are killed (needs Docker)
  potluck-bench e2e [--rounds N] [--duration D]   Front over the mesh vs NGINX vs standalone Front on the same containers (needs Docker, nginx, wrk)
  potluck-bench fleet --hosts N[,N...] --instances M[,M...]   the control plane with N simulated hosts and M instances

Run "potluck-bench COMMAND --help" for a command's flags.`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := cli.OS()
	err := run(ctx, os.Args[1:], env)
	stop()
	os.Exit(cli.Exit(env.Stderr, "potluck-bench", err))
}

func run(ctx context.Context, args []string, env cli.Env) error {
	if len(args) == 0 {
		return cli.Usagef("no command: %s (see potluck-bench --help)", commandNames)
	}
	switch args[0] {
	case "table":
		return runTable(ctx, args[1:], env)
	case "load":
		return runLoad(ctx, args[1:], env)
	case "placement":
		return runPlacement(ctx, args[1:], env)
	case "geo", "simulate":
		return runGeo(ctx, args[1:], env)
	case "autoscale":
		return runAutoscale(ctx, args[1:], env)
	case "faults":
		return runFaults(ctx, args[1:], env)
	case "e2e":
		return runE2E(ctx, args[1:], env)
	case "fleet":
		return runFleet(ctx, args[1:], env)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(env.Stdout, usage)
		return flag.ErrHelp
	case "-version", "--version":
		fmt.Fprintln(env.Stdout, "potluck-bench", version.Get())
		return cli.ErrVersion
	}
	return cli.Usagef("unknown command %q: %s (see potluck-bench --help)", args[0], commandNames)
}

// commandNames are run's commands, for the usage errors.
const commandNames = "table, load, geo, placement, autoscale, faults, e2e or fleet"

// numbers parses the comma-separated numbers of a list flag such as --counts.
func numbers[T int | float64](flagName string, list []string, parse func(string) (T, error)) ([]T, error) {
	var out []T
	for _, s := range list {
		n, err := parse(s)
		if err != nil {
			return nil, cli.Usagef("--%s %q: %w", flagName, s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloat(s string) (float64, error) { return strconv.ParseFloat(s, 64) }

// targetList is a repeatable --target; values are not split on commas
// (",host=" belongs to a target) but on whitespace, so the environment twin
// can hold several.
type targetList []table.Target

func (l *targetList) String() string {
	var s []string
	for _, t := range *l {
		s = append(s, t.Name+"="+t.URL)
	}
	return strings.Join(s, " ")
}

func (l *targetList) Set(v string) error {
	fields := strings.Fields(v)
	for i, f := range fields {
		if !strings.Contains(f, "=") && i+1 < len(fields) {
			// "my site=http://..." split at the space: say what happened.
			return fmt.Errorf("target name %q has a space: use one word such as %q (spaces separate targets)", f+" "+strings.SplitN(fields[i+1], "=", 2)[0], f+"-"+strings.SplitN(fields[i+1], "=", 2)[0])
		}
	}
	for _, f := range fields {
		t, err := table.ParseTarget(f)
		if err != nil {
			return err
		}
		*l = append(*l, t)
	}
	return nil
}

type scenarioList []geo.Scenario

func (l *scenarioList) String() string {
	var s []string
	for _, sc := range *l {
		s = append(s, sc.Name)
	}
	return strings.Join(s, " ")
}

func (l *scenarioList) Set(v string) error {
	for _, part := range strings.Split(v, ";") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		sc, err := geo.ParseScenario(part)
		if err != nil {
			return err
		}
		*l = append(*l, sc)
	}
	return nil
}

// tableFlags are the measurement flags table and geo share.
type tableFlags struct {
	runs, warmup      int
	counts, methods   cli.StringList
	timeout           time.Duration
	format, out       string
	paper             bool
	logLevel, logForm string
}

func (f *tableFlags) register(fs *cli.FlagSet, runs int) {
	fs.IntVar(&f.runs, "runs", runs, "runs per cell; the paper used 15 (lower it for quick checks)")
	fs.Var(&f.counts, "counts", "numbers of sequential requests per run (comma-separated; default 1,10,25)")
	fs.Var(&f.methods, "methods", "methods to measure, in row order (comma-separated; default GET,POST)")
	fs.IntVar(&f.warmup, "warmup", 2, "warm-up GETs per target before measuring (0: none)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "bound on one request")
	fs.StringVar(&f.format, "format", "markdown", "output: markdown, csv or json")
	fs.BoolVar(&f.paper, "paper", true, "print the paper's published columns alongside")
	fs.StringVar(&f.out, "out", "", "write the table to this file instead of stdout")
	fs.StringVar(&f.logLevel, "log-level", "info", "progress log level on stderr: debug, info, warn or error")
	fs.StringVar(&f.logForm, "log-format", "text", "progress log format: text or json")
}

func (f *tableFlags) config(stderr io.Writer) (table.Config, *slog.Logger, error) {
	log, err := cli.Logger(stderr, f.logLevel, f.logForm)
	if err != nil {
		return table.Config{}, nil, err
	}
	if f.runs < 1 {
		return table.Config{}, nil, cli.Usagef("--runs %d: at least 1 (the paper used 15)", f.runs)
	}
	cfg := table.Config{Runs: f.runs, Methods: f.methods, Timeout: f.timeout, Warmup: f.warmup}
	if f.warmup == 0 {
		cfg.Warmup = -1
	}
	if cfg.Counts, err = numbers("counts", f.counts, strconv.Atoi); err != nil {
		return table.Config{}, nil, err
	}
	switch f.format {
	case "markdown", "md", "csv", "json":
	default:
		return table.Config{}, nil, cli.Usagef("--format %q: use markdown, csv or json", f.format)
	}
	cfg.OnCell = func(c table.Cell) {
		log.Info("cell", "target", c.Target, "method", c.Method, "requests", c.Requests, "runs", c.Runs, "mean_s", fmt.Sprintf("%.5f", c.Mean))
	}
	return cfg, log, nil
}

func (f *tableFlags) write(stdout io.Writer, res *table.Result) error {
	w := stdout
	if f.out != "" {
		file, err := os.Create(f.out)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	return table.Write(w, f.format, res, table.Options{Paper: f.paper})
}

func runTable(ctx context.Context, args []string, env cli.Env) error {
	fs := cli.NewFlagSet("potluck-bench table", `potluck-bench table measures the paper's Table 1: for each target, for N in
--counts, for each method, --runs runs of N sequential requests on one fresh
keep-alive client each; the cell is the mean seconds per run. POST sends
`+table.PostBody+` as application/json (the sample app stores it).`,
		`Example:
  potluck-bench table --target local=http://127.0.0.1:8080/,host=hello.example --runs 3`)
	var targets targetList
	var tf tableFlags
	fs.Var(&targets, "target", "what to measure, NAME=URL[,host=HOST]; repeatable (the environment twin takes several, space-separated)")
	tf.register(fs, 15)
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	if len(targets) == 0 {
		return cli.Usagef("table: at least one --target NAME=URL[,host=HOST]")
	}
	cfg, _, err := tf.config(env.Stderr)
	if err != nil {
		return err
	}
	cfg.Targets = targets
	res, err := table.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return tf.write(env.Stdout, res)
}

func runLoad(ctx context.Context, args []string, env cli.Env) error {
	fs := cli.NewFlagSet("potluck-bench load", `potluck-bench load sends closed-loop load: --concurrency workers each send a
request, wait for the answer and send the next, until --duration or --count.
It prints req/s and latency percentiles (p50, p90, p99, max over all samples).
-c, -d and -n are short for --concurrency, --duration and --count.`,
		`Example:
  potluck-bench load --url http://127.0.0.1:8080/ --host hello.example --concurrency 16 --duration 20s`)
	var cfg load.Config
	var format string
	var progress, noProgress bool
	fs.StringVar(&cfg.URL, "url", "", "URL to load (required)")
	fs.StringVar(&cfg.Host, "host", "", "Host header to send (a Front routes by it)")
	fs.StringVar(&cfg.Method, "method", "GET", "HTTP method")
	fs.StringVar(&cfg.Body, "body", "", "request body (e.g. "+table.PostBody+")")
	fs.StringVar(&cfg.ContentType, "content-type", "", "Content-Type of the body (default application/json)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "workers, each with its own connection, each waiting for its answer before the next request")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (default 10s when --count is not given; at most 1h)")
	fs.IntVar(&cfg.Count, "count", 0, "stop after this many requests (0: only --duration)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "bound on one request")
	fs.StringVar(&format, "format", "text", "output: text or json")
	fs.BoolVar(&progress, "progress", false, "print a live progress line on stderr once a second even when stderr is not a terminal")
	fs.BoolVar(&noProgress, "no-progress", false, "never print the progress line")
	if err := fs.Parse(expandShort(args, map[string]string{"c": "concurrency", "d": "duration", "n": "count"}), env); err != nil {
		return err
	}
	if cfg.URL == "" {
		return cli.Usagef("load: --url is required")
	}
	if format != "text" && format != "json" {
		return cli.Usagef("--format %q: use text or json", format)
	}
	if (progress || isTerminal(env.Stderr)) && !noProgress {
		cfg.Progress = env.Stderr
	}
	rep, err := load.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if format == "json" {
		return load.WriteJSON(env.Stdout, rep)
	}
	return load.WriteText(env.Stdout, rep)
}

func runGeo(ctx context.Context, args []string, env cli.Env) error {
	var scenarios scenarioList
	var tf tableFlags
	var image string
	var cores, backs int
	var nodeLogs bool
	fs := cli.NewFlagSet("potluck-bench geo", geoIntro(), `Example (a quick check, one run per cell):
  potluck-bench geo --runs 1 --counts 1,10`)
	fs.Var(&scenarios, "scenario", "a simulated deployment NAME=CLIENT_RTT/MESH_RTT or NAME=plain; repeatable, ';'-separated in the environment twin (default: a plain baseline and the paper's three columns)")
	fs.StringVar(&image, "image", "", "the sample app's `docker save` tarball (default: build it now, as make app-image does)")
	fs.IntVar(&cores, "cores", 1, "core nodes per simulated cluster")
	fs.IntVar(&backs, "backs", 2, "Backs per simulated cluster (each runs one instance of the sample app)")
	fs.BoolVar(&nodeLogs, "node-logs", false, "pass the nodes' own logs to stderr")
	tf.register(fs, 15)
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	cfg, log, err := tf.config(env.Stderr)
	if err != nil {
		return err
	}
	if image == "" {
		dir, err := os.MkdirTemp("", "potluck-bench-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		image = filepath.Join(dir, "app-image.tar")
		log.Info("building the sample app image", "tag", appimage.DefaultTag)
		if err := appimage.Build(ctx, appimage.DefaultTag, image); err != nil {
			return err
		}
	}
	start := time.Now()
	res, err := geo.Run(ctx, geo.Config{Scenarios: scenarios, Tarball: image, Cores: cores, Backs: backs, Table: cfg, Logger: log, NodeLogs: nodeLogs})
	if err != nil {
		return err
	}
	log.Info("done", "took", time.Since(start).Round(time.Second))
	return tf.write(env.Stdout, res)
}

// geoIntro is geo's help text, with the default scenarios' delays.
func geoIntro() string {
	var scDoc strings.Builder
	for _, sc := range geo.PaperScenarios() {
		if sc.Plain {
			fmt.Fprintf(&scDoc, "\n  %-28s plain local cluster, no simulated delay", sc.Name)
		} else {
			fmt.Fprintf(&scDoc, "\n  %-28s client<->Front RTT %v, Front<->Back (tunnel) RTT %v", sc.Name, sc.ClientRTT, sc.MeshRTT)
		}
	}
	return `potluck-bench geo reproduces the paper's two cluster columns (and the GKE one)
as a simulation: for each scenario it starts a local Potluck on loopback (core,
one Front, Backs running the sample app in Docker), gives every WireGuard node
a simulated delay (meshnet.WANBind, half the tunnel RTT on each side), puts a
delaying TCP proxy between the client and the Front, and runs the table method
through it. Needs a Docker Engine. Traffic stays on 127.0.0.0/8.

Default scenarios (docs/benchmarks.md explains the round-trip times):` + scDoc.String()
}

// expandShort rewrites short flags (-c 8, -c=8) to their long names before
// parsing, so a short flag counts as given and its environment twin does not
// override it.
func expandShort(args []string, short map[string]string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if long, ok := short[name]; ok && strings.HasPrefix(a, "-") {
			a = "--" + long
			if hasValue {
				a += "=" + value
			}
		}
		out = append(out, a)
	}
	return out
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
