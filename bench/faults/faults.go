// Package faults is the data plane's fault benchmark (make bench-faults): a
// `make demo` cluster of real processes on loopback (3 core nodes, one
// Front, two Backs running the sample app in Docker) under steady open-loop
// load through the Front, while a container, a Back process and the Front
// process are killed in turn. It reports, per scenario, ok and failed
// requests, latency from each request's scheduled start (p50, p99, max) and
// the longest gap without a success.
package faults

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"potluck/bench/appimage"
	"potluck/bench/procluster"
)

// Scenario names, in the order they run by default.
const (
	ScenarioBaseline  = "baseline"
	ScenarioContainer = "container"
	ScenarioBack      = "back"
	ScenarioFront     = "front"
	// ScenarioFrontNoCore restarts the Front while every core node is down:
	// it must serve from its saved routes and learned endpoints alone.
	ScenarioFrontNoCore = "front-no-core"
)

// scenarioTitles name the known scenarios in the report.
var scenarioTitles = map[string]string{
	ScenarioBaseline:    "baseline (no fault)",
	ScenarioContainer:   "docker kill of one instance's container",
	ScenarioBack:        "kill -9 of one potluck-back, then restart",
	ScenarioFront:       "kill -9 of the potluck-front, identical restart",
	ScenarioFrontNoCore: "kill -9 of the potluck-front with every core node down",
}

// DefaultScenarios is every scenario, in order.
func DefaultScenarios() []string {
	return []string{ScenarioBaseline, ScenarioContainer, ScenarioBack, ScenarioFront, ScenarioFrontNoCore}
}

// Config says how to load the cluster and what to break.
type Config struct {
	// Rate is the open-loop load in requests per second (default 150).
	Rate float64
	// Scenario is each scenario's minimum window (default 30 s); a window
	// lasts until the cluster is whole again, at most Settle longer.
	Scenario time.Duration
	// LeadIn is how long each scenario runs before its fault (default 3 s).
	LeadIn time.Duration
	// Settle bounds the wait for the cluster to be whole after a window's
	// minimum (default 90 s).
	Settle time.Duration
	// BackDown is how long the killed Back stays down (default 5 s).
	BackDown time.Duration
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests (default 1000).
	MaxInFlight int
	// Scenarios to run, in order (default DefaultScenarios).
	Scenarios []string
	// Image is the sample app's `docker save` tarball ("": build it).
	Image string
	// BinDir holds potluck-core, potluck-front and potluck-back ("": build
	// them into the run directory).
	BinDir string
	// Keep leaves the run directory (nodes' state and logs) in place; a
	// failed run keeps its logs anyway, an interrupted one does not.
	Keep   bool
	Logger *slog.Logger
}

// Domain is the installation's domain, sent as Host.
const Domain = "faults.potluck.test"

// appName names the app and its installation.
const appName = "faults"

func (c *Config) withDefaults() error {
	if c.Rate == 0 {
		c.Rate = 150
	}
	if c.Scenario == 0 {
		c.Scenario = 30 * time.Second
	}
	if c.LeadIn == 0 {
		c.LeadIn = 3 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = 90 * time.Second
	}
	if c.BackDown == 0 {
		c.BackDown = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 1000
	}
	if len(c.Scenarios) == 0 {
		c.Scenarios = DefaultScenarios()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Rate < 1 || c.Rate > 2000:
		return fmt.Errorf("faults: rate %.1f req/s outside [1, 2000]", c.Rate)
	case c.Scenario < 5*time.Second || c.Scenario > 30*time.Minute:
		return fmt.Errorf("faults: scenario window %v outside [5s, 30m]", c.Scenario)
	case c.LeadIn < 0 || c.LeadIn >= c.Scenario:
		return fmt.Errorf("faults: lead-in %v must be shorter than the scenario window %v", c.LeadIn, c.Scenario)
	case c.Settle < time.Second || c.Settle > 30*time.Minute:
		return fmt.Errorf("faults: settle %v outside [1s, 30m]", c.Settle)
	case c.BackDown < 0 || c.BackDown > 10*time.Minute:
		return fmt.Errorf("faults: back-down %v outside [0, 10m]", c.BackDown)
	case c.Timeout < 100*time.Millisecond || c.Timeout > 5*time.Minute:
		return fmt.Errorf("faults: timeout %v outside [100ms, 5m]", c.Timeout)
	case c.MaxInFlight < 1 || c.MaxInFlight > 10_000:
		return fmt.Errorf("faults: max in flight %d outside [1, 10000]", c.MaxInFlight)
	}
	for _, s := range c.Scenarios {
		if _, ok := scenarioTitles[s]; !ok {
			return fmt.Errorf("faults: unknown scenario %q (known: %s)", s, strings.Join(DefaultScenarios(), ", "))
		}
	}
	return nil
}

// ParseScenarios reads a comma-separated scenario list; a scenario may
// repeat (each run is its own window).
func ParseScenarios(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if _, ok := scenarioTitles[f]; !ok {
			return nil, fmt.Errorf("unknown scenario %q (known: %s)", f, strings.Join(DefaultScenarios(), ", "))
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scenario in %q", s)
	}
	return out, nil
}

// Run builds what it needs, starts the cluster, deploys the sample app,
// runs the scenarios under load and removes everything it started, also
// when ctx is cancelled.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if err := cfg.withDefaults(); err != nil {
		return Result{}, err
	}
	log := cfg.Logger
	if _, err := procluster.Docker(ctx, "version", "--format", "{{.Server.Version}}"); err != nil {
		return Result{}, fmt.Errorf("faults: needs a Docker Engine (bash scripts/docker-up.sh): %w", err)
	}
	dir, err := os.MkdirTemp("", "potluck-bench-faults-*")
	if err != nil {
		return Result{}, fmt.Errorf("faults: %w", err)
	}
	defer func() {
		switch {
		case cfg.Keep:
			log.Info("run directory kept", "dir", dir)
		case err != nil && ctx.Err() == nil:
			// A failed run keeps the nodes' logs and state to read, not
			// the binaries and the image.
			os.RemoveAll(filepath.Join(dir, "bin"))
			os.Remove(filepath.Join(dir, "app-image.tar"))
			log.Info("run failed; logs kept", "dir", dir)
		default:
			os.RemoveAll(dir)
		}
	}()

	var bins procluster.Binaries
	if cfg.BinDir != "" {
		bins, err = procluster.BinDir(cfg.BinDir)
	} else {
		log.Info("building potluck-core, potluck-front and potluck-back")
		bins, err = procluster.BuildBinaries(ctx, filepath.Join(dir, "bin"))
	}
	if err != nil {
		return Result{}, fmt.Errorf("faults: %w", err)
	}
	image := cfg.Image
	if image == "" {
		image = filepath.Join(dir, "app-image.tar")
		log.Info("building the sample app image", "tag", appimage.DefaultTag)
		if err := appimage.Build(ctx, appimage.DefaultTag, image); err != nil {
			return Result{}, fmt.Errorf("faults: %w", err)
		}
	}

	log.Info("starting 3 core nodes, 1 Front, 2 Backs", "dir", dir)
	c, err := procluster.Start(ctx, procluster.Config{Dir: dir, Bins: bins, Cores: 3, Backs: numBacks, Name: "bench-faults", Logger: log})
	defer func() {
		log.Info("stopping the cluster and removing its containers and networks")
		if cerr := c.Close(); cerr != nil {
			log.Warn("cleanup", "err", cerr)
		}
	}()
	if err != nil {
		return Result{}, fmt.Errorf("faults: %w", err)
	}
	log.Info("deploying the sample app on 2 instances")
	if err := c.Deploy(ctx, image, appName, Domain, 0); err != nil {
		return Result{}, fmt.Errorf("faults: %w", err)
	}

	// Bounded in count: every window at its longest, plus the warm-up.
	budget := time.Duration(len(cfg.Scenarios))*(cfg.Scenario+cfg.Settle+cfg.BackDown) + 3*time.Minute
	load, err := StartLoad(LoadConfig{
		URL: "http://" + c.FrontAddr + "/", Host: Domain, Rate: cfg.Rate, Timeout: cfg.Timeout,
		MaxInFlight: cfg.MaxInFlight, MaxRequests: min(int(cfg.Rate*budget.Seconds())+1, maxSamples),
	})
	if err != nil {
		return Result{}, fmt.Errorf("faults: %w", err)
	}
	defer load.Stop()
	log.Info("load started; waiting until both instances answer through the Front", "rate", cfg.Rate)
	if err := waitWhole(ctx, load, 2*time.Minute); err != nil {
		return Result{}, fmt.Errorf("faults: the Front never served both instances (logs in %s): %w", dir, err)
	}

	r := &runner{cfg: cfg, c: c, load: load, log: log}
	var windows []Window
	for _, name := range cfg.Scenarios {
		w, err := r.scenario(ctx, name)
		if err != nil {
			return Result{}, fmt.Errorf("faults: %s: %w", name, err)
		}
		windows = append(windows, w)
	}
	samples := load.Stop()
	res.Setup = fmt.Sprintf("cluster: 3 potluck-core, 1 potluck-front, 2 potluck-back, the sample app on 2 instances; "+
		"load: %.0f req/s open-loop keep-alive GETs through the Front, latency from the scheduled start, timeout %v; "+
		"window %v per scenario (fault at +%v) until whole again", cfg.Rate, cfg.Timeout, cfg.Scenario, cfg.LeadIn)
	for _, w := range windows {
		res.Scenarios = append(res.Scenarios, Summarize(samples, w))
	}
	return res, nil
}

// numBacks is how many Backs the cluster has, each running one instance.
const numBacks = 2

// maxSamples bounds the samples one run keeps (about 100 bytes each).
const maxSamples = 5_000_000

// healthWindow is how long the load must see only successes, from both
// instances, for the cluster to count as whole.
const healthWindow = 2 * time.Second

// waitWhole waits until the load sees the cluster whole.
func waitWhole(ctx context.Context, load *Load, timeout time.Duration) error {
	return procluster.Poll(ctx, timeout, 100*time.Millisecond, func(context.Context) bool {
		return load.Healthy(healthWindow, numBacks)
	})
}

// maxCoreDown bounds how long front-no-core keeps the core down.
const maxCoreDown = 15 * time.Second

// runner runs scenarios against one cluster under one load.
type runner struct {
	cfg  Config
	c    *procluster.Cluster
	load *Load
	log  *slog.Logger
}

// scenario runs one scenario and returns its window.
func (r *runner) scenario(ctx context.Context, name string) (Window, error) {
	w := Window{Name: scenarioTitles[name], From: r.load.Now()}
	event := func(format string, a ...any) {
		what := fmt.Sprintf(format, a...)
		w.Events = append(w.Events, Event{At: r.load.Now(), What: what})
		r.log.Info(name, "event", what)
	}
	r.log.Info("scenario", "name", w.Name)
	if err := sleep(ctx, r.cfg.LeadIn); err != nil {
		return w, err
	}
	var killed string // the container killed
	switch name {
	case ScenarioContainer:
		var err error
		if w.Affected, err = r.c.InstanceOn(ctx, appName, 0); err != nil {
			return w, err
		}
		var id string
		if id, killed, err = r.c.ContainerOf(ctx, appName, 0); err != nil {
			return w, err
		}
		if _, err := procluster.Docker(ctx, "kill", id); err != nil {
			return w, err
		}
		// From here the container is dead: docker kill returns once the
		// signal is delivered, and SIGKILL cannot be caught.
		w.FaultAt = r.load.Now()
		event("docker kill %s (%s's instance)", killed, procluster.BackName(0))
	case ScenarioBack:
		b := r.c.Backs[numBacks-1]
		var err error
		if w.Affected, err = r.c.InstanceOn(ctx, appName, numBacks-1); err != nil {
			return w, err
		}
		if err := b.Kill(syscall.SIGKILL, 10*time.Second); err != nil {
			return w, err
		}
		w.FaultAt = r.load.Now() // kill returns once the process has exited
		event("kill -9 %s", b.Name)
		if err := sleep(ctx, r.cfg.BackDown); err != nil {
			return w, err
		}
		if err := b.Start(); err != nil {
			return w, err
		}
		event("%s restarted", b.Name)
	case ScenarioFront, ScenarioFrontNoCore:
		if name == ScenarioFrontNoCore {
			for _, p := range r.c.Cores {
				if err := p.Kill(syscall.SIGKILL, 10*time.Second); err != nil {
					return w, err
				}
			}
			event("kill -9 of all %d core nodes", len(r.c.Cores))
			if err := sleep(ctx, time.Second); err != nil {
				return w, err
			}
		}
		f := r.c.Front
		w.DownFrom = r.load.Now()
		w.FaultAt = w.DownFrom
		if err := f.Kill(syscall.SIGKILL, 10*time.Second); err != nil {
			return w, err
		}
		event("kill -9 %s", f.Name)
		if err := f.Start(); err != nil {
			return w, err
		}
		event("%s restarted with the same flags and data directory", f.Name)
		if err := procluster.WaitListening(ctx, r.c.FrontAddr, time.Minute); err != nil {
			return w, fmt.Errorf("the restarted Front never listened: %w", err)
		}
		w.DownTo = r.load.Now()
		event("%s's listener accepts again", f.Name)
	}
	if name == ScenarioFrontNoCore {
		// Back well before the core's heartbeat TTL (30 s) runs out, so no
		// instance is rescheduled: this scenario is about the Front.
		if err := sleep(ctx, min(w.From+r.cfg.Scenario, w.FaultAt+maxCoreDown)-r.load.Now()); err != nil {
			return w, err
		}
		for _, p := range r.c.Cores {
			if err := p.Start(); err != nil {
				return w, err
			}
		}
		event("core nodes restarted")
	}
	if err := sleep(ctx, w.From+r.cfg.Scenario-r.load.Now()); err != nil {
		return w, err
	}
	if err := waitWhole(ctx, r.load, r.cfg.Settle); err == nil {
		w.Recovered = true
	} else if ctx.Err() != nil {
		return w, ctx.Err()
	}
	w.To = r.load.Now()
	if killed != "" {
		if at, err := procluster.ContainerStarted(ctx, killed); err != nil {
			r.log.Warn("the killed container", "err", err)
		} else if off := r.load.Offset(at); off > w.FaultAt {
			event("%s running again (restarted by Docker or the Back)", killed)
			w.Events[len(w.Events)-1].At = off
		}
	}
	if w.Recovered {
		event("whole: %v of only successes from both instances", healthWindow)
	}
	return w, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
