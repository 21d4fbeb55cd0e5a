// Package e2e is `make bench-e2e`: the real data path against NGINX. It
// starts a cluster of real processes (bench/procluster: a potluck-core, two
// potluck-fronts, two potluck-backs) with two apps on both Backs, the sample
// app (as make demo deploys it) and a fasthttp app (bench/appimage/fast, so
// the containers are not the ceiling), runs NGINX and a standalone
// potluck-front in front of the same containers, and loads them and the
// Fronts (the second with another --pipeline) in rotating order with wrk: req/s,
// p50, p99 and CPU per request of each, per round and as medians with the
// ratios to NGINX. Then the latency at one connection and single-stream
// uploads and downloads through each path. All traffic stays on loopback;
// every run is bounded in time.
package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"potluck/bench/appimage"
	"potluck/bench/procluster"
	"potluck/bench/procstat"
)

// Config is what one run measures.
type Config struct {
	Rounds      int           // alternating rounds per app (default 3)
	Duration    time.Duration // one wrk run (default 3s)
	Connections int           // wrk connections (default 64)
	Threads     int           // wrk threads (default 2)
	// StreamBytes is the size of one upload and one download (default
	// 64 MiB); 0 after defaults means skip the streams (negative given).
	StreamBytes int64
	// SampleCPUs and FastCPUs are the CPUs each instance of the two apps
	// is granted (defaults 0.25 as make demo, and 1).
	SampleCPUs, FastCPUs float64
	BinDir               string // potluck-core/-front/-back; "" builds them
	Image, FastImage     string // docker save tarballs; "" builds them
	Nginx, Wrk           string // binaries (default from PATH)
	// ProfileDir, if set, gets CPU profiles of the Front and both Backs
	// taken under the fast app's load through the mesh and during single
	// streams through it.
	ProfileDir string
	// MeshPipeline ≥ 0 adds a second Front with --pipeline MeshPipeline
	// (pipelined connections per instance; 0: the keep-alive pool only):
	// the contender front-mesh-pool or front-mesh-pipeN. -1: none.
	MeshPipeline int
	Keep         bool // keep the run directory
	Logger       *slog.Logger
	Out          io.Writer
}

func (c *Config) withDefaults() error {
	c.Rounds = cmp.Or(c.Rounds, 3)
	c.Duration = cmp.Or(c.Duration, 3*time.Second)
	c.Connections = cmp.Or(c.Connections, 64)
	c.Threads = cmp.Or(c.Threads, 2)
	switch {
	case c.StreamBytes == 0:
		c.StreamBytes = 64 << 20
	case c.StreamBytes < 0:
		c.StreamBytes = 0
	}
	c.SampleCPUs, c.FastCPUs = cmp.Or(c.SampleCPUs, 0.25), cmp.Or(c.FastCPUs, 1)
	c.Nginx, c.Wrk = cmp.Or(c.Nginx, "nginx"), cmp.Or(c.Wrk, "wrk")
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	switch {
	case c.Rounds < 1 || c.Connections < 1 || c.Threads < 1:
		return errors.New("rounds, connections and threads must be at least 1")
	case c.Duration < time.Second || c.Duration > time.Minute:
		return fmt.Errorf("duration %v: between 1s and 1m per run", c.Duration)
	case c.StreamBytes > 1<<30:
		return fmt.Errorf("stream size %d: at most 1 GiB (the fast app's limit)", c.StreamBytes)
	}
	for _, bin := range []string{c.Nginx, c.Wrk} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found (scripts/install-deps.sh --bench installs nginx and wrk): %w", bin, err)
		}
	}
	return nil
}

// Contenders, in the first round's order.
const (
	nginxName      = "nginx"
	meshName       = "front-mesh"
	standaloneName = "front-standalone"
)

// Domains the two apps are installed under.
const (
	sampleDomain = "sample.bench-e2e.test"
	fastDomain   = "fast.bench-e2e.test"
)

// Result holds the medians that make the summary lines.
type Result struct {
	// Sample and Fast are the mesh/NGINX ratios of median throughput and
	// p99, for the sample app and the fast app; SamplePipe and FastPipe
	// the same for the second Front (zero without it).
	Sample, Fast, SamplePipe, FastPipe Ratios
}

// Ratios are a contender's medians over NGINX's.
type Ratios struct{ Throughput, P99, CPU float64 }

// Run starts everything, measures, prints to cfg.Out and removes all it
// started, also when ctx is cancelled.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if err := cfg.withDefaults(); err != nil {
		return Result{}, fmt.Errorf("bench-e2e: %w", err)
	}
	log := cfg.Logger
	if _, err := procluster.Docker(ctx, "version", "--format", "{{.Server.Version}}"); err != nil {
		return Result{}, fmt.Errorf("bench-e2e: needs a Docker Engine (bash scripts/docker-up.sh): %w", err)
	}
	dir, err := os.MkdirTemp("", "potluck-bench-e2e-*")
	if err != nil {
		return Result{}, fmt.Errorf("bench-e2e: %w", err)
	}
	defer func() {
		if cfg.Keep || (err != nil && ctx.Err() == nil) {
			log.Info("run directory kept", "dir", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	bins, images, err := prepare(ctx, cfg, dir)
	if err != nil {
		return Result{}, fmt.Errorf("bench-e2e: %w", err)
	}

	fronts := 1
	if cfg.MeshPipeline >= 0 {
		fronts = 2
	}
	log.Info("starting the cluster", "cores", 1, "fronts", fronts, "backs", 2, "dir", dir)
	c, err := procluster.Start(ctx, procluster.Config{
		Dir: dir, Bins: bins, Cores: 1, Fronts: fronts, Backs: 2, BackCPUs: 2, Name: "bench-e2e", Logger: log,
		FrontArgs: []string{"--pprof", "--max-body", "1GiB", "--log-level", "warn"},
		FrontArgsOf: func(i int) []string {
			if i == 1 {
				return []string{"--pipeline", strconv.Itoa(cfg.MeshPipeline)}
			}
			return nil
		},
		BackArgs: []string{"--pprof", "--log-level", "warn"},
	})
	defer func() {
		log.Info("stopping the cluster and removing its containers and networks")
		if cerr := c.Close(); cerr != nil {
			log.Warn("cleanup", "err", cerr)
		}
	}()
	if err != nil {
		return Result{}, fmt.Errorf("bench-e2e: %w", err)
	}
	apps := []app{{name: "sample", domain: sampleDomain}, {name: "fast", domain: fastDomain}}
	for i, cpus := range []float64{cfg.SampleCPUs, cfg.FastCPUs} {
		log.Info("deploying", "app", apps[i].name, "instances", 2, "cpus", cpus)
		if err := c.Deploy(ctx, images[i], apps[i].name, apps[i].domain, cpus); err != nil {
			return Result{}, fmt.Errorf("bench-e2e: %s: %w", apps[i].name, err)
		}
		if apps[i], err = locate(ctx, c, apps[i]); err != nil {
			return Result{}, fmt.Errorf("bench-e2e: %w", err)
		}
	}

	ngx, ngxAddr, err := startNginx(cfg.Nginx, apps)
	if err != nil {
		return Result{}, fmt.Errorf("bench-e2e: %w", err)
	}
	defer ngx.stop()
	sa, saAddr, err := startStandalone(bins.Front, dir, apps)
	if err != nil {
		return Result{}, fmt.Errorf("bench-e2e: %w", err)
	}
	defer sa.stop()
	r := &rig{
		cfg:        cfg,
		contenders: []string{nginxName, meshName, standaloneName},
		addrs:      map[string]string{nginxName: ngxAddr, meshName: c.FrontAddr, standaloneName: saAddr},
		pids: map[string][]int{
			nginxName: {ngx.PID()}, standaloneName: {sa.PID()},
			meshName: {c.Front.PID(), c.Backs[0].PID(), c.Backs[1].PID()},
		},
		backPIDs:    []int{c.Backs[0].PID(), c.Backs[1].PID()},
		backMetrics: c.BackMetrics,
		proxies:     dockerProxies(c.PublishIPs),
	}
	pipeName := secondFront(cfg.MeshPipeline)
	if cfg.MeshPipeline >= 0 {
		r.contenders = []string{nginxName, meshName, pipeName, standaloneName}
		r.addrs[pipeName] = c.FrontAddrs[1]
		r.pids[pipeName] = []int{c.Fronts[1].PID(), c.Backs[0].PID(), c.Backs[1].PID()}
	}
	for _, a := range apps {
		for _, name := range r.contenders {
			if err := waitAnswer(ctx, r.addrs[name], a.domain, time.Minute); err != nil {
				return Result{}, fmt.Errorf("bench-e2e: %s does not serve %s (logs in %s): %w", name, a.domain, dir, err)
			}
		}
	}
	printSetup(cfg, r)

	summaries := map[string]map[string]Ratios{}
	for _, a := range apps {
		results, err := r.rounds(ctx, a)
		if err != nil {
			return Result{}, fmt.Errorf("bench-e2e: %s: %w", a.name, err)
		}
		summaries[a.name] = r.summary(a, results)
	}
	if err := r.oneConnection(ctx, apps[1]); err != nil {
		return Result{}, fmt.Errorf("bench-e2e: one connection: %w", err)
	}
	if cfg.StreamBytes > 0 {
		if err := r.streams(ctx, apps[1]); err != nil {
			return Result{}, fmt.Errorf("bench-e2e: streams: %w", err)
		}
	}
	if cfg.ProfileDir != "" {
		if err := r.profile(ctx, c, apps[1]); err != nil {
			return Result{}, fmt.Errorf("bench-e2e: profile: %w", err)
		}
	}
	res = Result{Sample: summaries["sample"][meshName], Fast: summaries["fast"][meshName],
		SamplePipe: summaries["sample"][pipeName], FastPipe: summaries["fast"][pipeName]}
	fmt.Fprintf(cfg.Out, "\nload average at the end: %s\n", procstat.LoadAvg())
	if cfg.MeshPipeline >= 0 {
		fmt.Fprintf(cfg.Out, "bench-e2e fast app, %s: mesh/nginx throughput %.2fx, p99 %.2fx\n", pipeName, res.FastPipe.Throughput, res.FastPipe.P99)
		fmt.Fprintf(cfg.Out, "bench-e2e sample app, %s: mesh/nginx throughput %.2fx, p99 %.2fx\n", pipeName, res.SamplePipe.Throughput, res.SamplePipe.P99)
	}
	fmt.Fprintf(cfg.Out, "bench-e2e fast app: mesh/nginx throughput %.2fx, p99 %.2fx\n", res.Fast.Throughput, res.Fast.P99)
	fmt.Fprintf(cfg.Out, "bench-e2e: mesh/nginx throughput %.2fx, p99 %.2fx\n", res.Sample.Throughput, res.Sample.P99)
	return res, nil
}

// prepare finds or builds the node binaries and the two app images.
func prepare(ctx context.Context, cfg Config, dir string) (procluster.Binaries, [2]string, error) {
	var bins procluster.Binaries
	var err error
	if cfg.BinDir != "" {
		bins, err = procluster.BinDir(cfg.BinDir)
	} else {
		cfg.Logger.Info("building potluck-core, potluck-front and potluck-back")
		bins, err = procluster.BuildBinaries(ctx, filepath.Join(dir, "bin"))
	}
	if err != nil {
		return bins, [2]string{}, err
	}
	images := [2]string{cfg.Image, cfg.FastImage}
	if images[0] == "" {
		images[0] = filepath.Join(dir, "app-image.tar")
		cfg.Logger.Info("building the sample app image", "tag", appimage.DefaultTag)
		if err := appimage.Build(ctx, appimage.DefaultTag, images[0]); err != nil {
			return bins, images, err
		}
	}
	if images[1] == "" {
		images[1] = filepath.Join(dir, "fast-image.tar")
		cfg.Logger.Info("building the fast app image", "tag", appimage.FastTag)
		if err := appimage.BuildFast(ctx, appimage.FastTag, images[1]); err != nil {
			return bins, images, err
		}
	}
	return bins, images, nil
}

// locate fills in where app's containers are published and their processes.
func locate(ctx context.Context, c *procluster.Cluster, a app) (app, error) {
	inst, _, err := c.API.Installation(ctx, a.name, nil)
	if err != nil {
		return a, err
	}
	for i := range c.Backs {
		for _, in := range inst.Instances {
			if in.HostName == procluster.BackName(i) && in.State == "running" {
				a.upstreams = append(a.upstreams, c.PublishIPs[i]+":"+strconv.Itoa(in.Port))
			}
		}
		id, _, err := c.ContainerOf(ctx, a.name, i)
		if err != nil {
			return a, err
		}
		out, err := procluster.Docker(ctx, "inspect", "--format", "{{.State.Pid}}", id)
		if err != nil {
			return a, err
		}
		pid, err := strconv.Atoi(strings.TrimSpace(out))
		if err != nil {
			return a, fmt.Errorf("container %s: pid %q: %w", id, out, err)
		}
		a.appPIDs = append(a.appPIDs, pid)
	}
	if len(a.upstreams) != len(c.Backs) {
		return a, fmt.Errorf("%s: %d running instances, want %d", a.name, len(a.upstreams), len(c.Backs))
	}
	return a, nil
}

// waitAnswer polls addr with Host: domain until it answers 200.
func waitAnswer(ctx context.Context, addr, domain string, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	ok := 0
	var last error
	err := procluster.Poll(ctx, limit, 100*time.Millisecond, func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		req.Host = domain
		resp, err := client.Do(req)
		if err != nil {
			last, ok = err, 0
			return false
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last, ok = fmt.Errorf("status %d", resp.StatusCode), 0
			return false
		}
		ok++
		return ok >= 4 // both instances, twice
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return err
}

// rig is what the rounds measure: each contender's address and processes.
type rig struct {
	cfg         Config
	contenders  []string // in the first round's order
	addrs       map[string]string
	pids        map[string][]int // CPU charged to the contender
	backPIDs    []int            // the part of the mesh path's CPU the Backs spend
	backMetrics []string         // the Backs' /metrics listeners
	proxies     []int            // docker-proxy processes of the containers
	mu          sync.Mutex
}

// secondFront names the contender of the second Front, which runs with
// --pipeline n.
func secondFront(n int) string {
	if n == 0 {
		return "front-mesh-pool"
	}
	return fmt.Sprintf("front-mesh-pipe%d", n)
}
