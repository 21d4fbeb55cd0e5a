// Package geo reproduces the paper's geography as a simulation on one
// machine: for each scenario it starts a local Potluck (internal/localcluster:
// core, one Front, Backs running the sample app in Docker) whose WireGuard
// links carry a simulated delay (meshnet.WANBind on every mesh node), puts a
// delaying TCP proxy (bench/delayproxy) between the client and the Front,
// and measures the paper's Table 1 (bench/table) through it.
package geo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"potluck/bench/delayproxy"
	"potluck/bench/table"
	"potluck/internal/localcluster"
	"potluck/meshnet"
)

// Scenario is one simulated deployment: one column of the table.
type Scenario struct {
	Name string `json:"name"`
	// ClientRTT is the round trip between the benchmark client and the Front.
	ClientRTT time.Duration `json:"client_rtt"`
	// MeshRTT is the round trip over the tunnel between Front and Back
	// (each mesh node delays what it sends by MeshRTT/2).
	MeshRTT time.Duration `json:"mesh_rtt"`
	// Plain runs without any WAN wrapper or proxy: the local baseline.
	Plain bool `json:"plain"`
}

// The paper's scenario, as assumptions (docs/benchmarks.md gives the
// reasoning): the Backs and the benchmark client are in Tyumen.
const (
	// TyumenFrankfurtRTT: 3,700 km great circle (37 ms in fibre at best);
	// typical Urals-to-Frankfurt routes run via Moscow.
	TyumenFrankfurtRTT = 70 * time.Millisecond
	// TyumenTaiwanRTT: 5,700 km great circle (57 ms at best), but routes
	// from Russia to Taiwan detour through Europe or Hong Kong.
	TyumenTaiwanRTT = 220 * time.Millisecond
	// InRegionRTT: between machines in one GCP region.
	InRegionRTT = time.Millisecond
)

// PaperScenarios are the baseline and the paper's three columns.
func PaperScenarios() []Scenario {
	return []Scenario{
		{Name: "local, no WAN", Plain: true},
		{Name: "sim: GKE (one region)", ClientRTT: TyumenFrankfurtRTT, MeshRTT: InRegionRTT},
		{Name: "sim: Front in europe-west3", ClientRTT: TyumenFrankfurtRTT, MeshRTT: TyumenFrankfurtRTT},
		{Name: "sim: Front in asia-east1", ClientRTT: TyumenTaiwanRTT, MeshRTT: TyumenTaiwanRTT},
	}
}

// ParseScenario reads "name=CLIENT_RTT/MESH_RTT" (e.g. "eu=70ms/70ms") or
// "name=plain".
func ParseScenario(s string) (Scenario, error) {
	name, spec, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return Scenario{}, fmt.Errorf("scenario %q: want name=CLIENT_RTT/MESH_RTT or name=plain", s)
	}
	if spec == "plain" {
		return Scenario{Name: name, Plain: true}, nil
	}
	c, m, ok := strings.Cut(spec, "/")
	if !ok {
		return Scenario{}, fmt.Errorf("scenario %q: want name=CLIENT_RTT/MESH_RTT", s)
	}
	cd, err1 := time.ParseDuration(c)
	md, err2 := time.ParseDuration(m)
	if err1 != nil || err2 != nil || cd < 0 || md < 0 {
		return Scenario{}, fmt.Errorf("scenario %q: bad round-trip times", s)
	}
	return Scenario{Name: name, ClientRTT: cd, MeshRTT: md}, nil
}

// Domain is the Host the simulated installations answer to.
const Domain = "hello.geo.test"

// Config says what to simulate and measure.
type Config struct {
	Scenarios []Scenario
	// Tarball is the sample app's `docker save` output (bench/appimage).
	Tarball string
	// Cores and Backs per cluster (defaults 1 and 2).
	Cores, Backs int
	// Table is the measurement; its Targets are filled in per scenario.
	Table table.Config
	// Logger gets progress (and, at debug, the nodes' logs).
	Logger *slog.Logger
	// NodeLogs passes the nodes' own logs to Logger.
	NodeLogs bool
}

// Run measures every scenario in turn, each on a fresh cluster, and returns
// one table with a column per scenario.
func Run(ctx context.Context, cfg Config) (*table.Result, error) {
	if cfg.Cores == 0 {
		cfg.Cores = 1
	}
	if cfg.Backs == 0 {
		cfg.Backs = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Scenarios) == 0 {
		cfg.Scenarios = PaperScenarios()
	}
	var all *table.Result
	for _, sc := range cfg.Scenarios {
		res, err := runScenario(ctx, cfg, sc)
		if err != nil {
			return nil, fmt.Errorf("geo: %s: %w", sc.Name, err)
		}
		if all == nil {
			all = res
		} else {
			all.Targets = append(all.Targets, res.Targets...)
			all.Cells = append(all.Cells, res.Cells...)
		}
	}
	return all, nil
}

func runScenario(ctx context.Context, cfg Config, sc Scenario) (*table.Result, error) {
	log := cfg.Logger.With("scenario", sc.Name)
	dir, err := os.MkdirTemp("", "potluck-geo-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var wan func(role, name string) *meshnet.WANConfig
	if !sc.Plain {
		// Every mesh node delays what it sends by half the round trip; the
		// core nodes too (their links are off the measured path).
		wan = func(role, name string) *meshnet.WANConfig { return &meshnet.WANConfig{Delay: sc.MeshRTT / 2} }
	}
	nodeLog := slog.New(slog.DiscardHandler)
	if cfg.NodeLogs {
		nodeLog = log
	}
	start := time.Now()
	c, err := localcluster.Start(ctx, localcluster.Config{Dir: dir, Cores: cfg.Cores, WAN: wan, Logger: nodeLog})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	f, err := c.StartFront(ctx, "front1")
	if err != nil {
		return nil, err
	}
	names := []string{"front1"}
	for i := range cfg.Backs {
		name := fmt.Sprintf("back%d", i+1)
		if _, err := c.StartBack(ctx, name, i, filepath.Join(dir, name)); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	if err := c.WaitReady(ctx, 60*time.Second, names...); err != nil {
		return nil, err
	}
	if err := c.PushTarball(ctx, "hello", cfg.Tarball, 8080); err != nil {
		return nil, err
	}
	err = c.Install(ctx, map[string]any{
		"name": "hello", "app": "hello", "fronts": 1, "backs": cfg.Backs, "domain": Domain,
		"cpus": 0.25, "memory_mb": 64, "disk_mb": 64, "container_port": 8080,
	}, cfg.Backs, 3*time.Minute)
	if err != nil {
		return nil, err
	}
	addr := f.Addr
	if !sc.Plain {
		p, err := delayproxy.Start("127.0.0.1:0", f.Addr, sc.ClientRTT/2, log)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		addr = p.Addr()
	}
	log.Info("cluster up", "took", time.Since(start).Round(time.Millisecond), "client_rtt", sc.ClientRTT, "mesh_rtt", sc.MeshRTT)

	tc := cfg.Table
	tc.Targets = []table.Target{{Name: sc.Name, URL: "http://" + addr + "/", Host: Domain}}
	// The first requests open the tunnel and the Front's upstream
	// connections; give the routes a moment to reach the Front first.
	if err := waitServing(ctx, tc.Targets[0]); err != nil {
		return nil, err
	}
	return table.Run(ctx, tc)
}

// waitServing retries one GET until the Front serves the domain.
func waitServing(ctx context.Context, t table.Target) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		_, err = table.Run(ctx, table.Config{Targets: []table.Target{t}, Counts: []int{1}, Methods: []string{"GET"}, Runs: 1, Warmup: -1, Timeout: 10 * time.Second})
		if err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the Front never served %s: %w", t.Host, err)
}
