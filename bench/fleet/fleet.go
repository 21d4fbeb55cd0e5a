// Package fleet measures the control plane at fleet scale: three real
// potluck-core processes on loopback, N simulated hosts registered through
// the public API, installations totalling M instances created through it,
// and every host holding a blocking query for its desired state and sending
// heartbeats with instance reports through the real agent API handlers
// (served by each core on its bench agent listener: the tunnel is the one
// part left out, see docs/benchmarks.md). It reports placements/s, the time
// from the API calls to every instance placed and running, API latency
// under that load, heartbeat handling, the leader's CPU and memory, raft log
// and snapshot sizes, snapshot and restore time, and how long a new core
// node takes to catch up.
package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"potluck/apiclient"
	"potluck/bench/procstat"
	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/meshnet"
)

// Config is one run.
type Config struct {
	Hosts     int // simulated hosts, Fronts included
	Instances int // instances over all installations
	// PerInstallation is how many instances each installation has (0:
	// min(100, Backs)); the last one takes the rest.
	PerInstallation int
	Fronts          int           // 0: max(1, Hosts/100)
	Writers         int           // concurrent API writers (0: 8)
	Heartbeat       time.Duration // each host's heartbeat interval (0: 5 s, the agent's default)
	HBWorkers       int           // goroutines sending heartbeats (0: min(64, Hosts))
	Hold            time.Duration // steady state measured after everything runs (0: 15 s)
	PlaceTimeout    time.Duration // bound on placing and starting everything (0: 5 min)
	CoreBin         string        // potluck-core binary
	Dir             string        // working directory (data dirs), removed by the caller
	ProfileOut      string        // if set, the leader's CPU profile during creation is written here
	Log             *slog.Logger
	Progress        io.Writer // progress lines; nil: none
}

// Result is one run's figures.
type Result struct {
	Hosts, Instances, Installations int

	RegisterTime     time.Duration // registering every host through the public API
	CreateTime       time.Duration // first create call to the last one answered (placements committed)
	AllPlacedTime    time.Duration // first create call to every instance in its host's desired state
	AllRunningTime   time.Duration // ... to every instance reported running and echoed back
	PlacementsPerSec float64       // Instances / CreateTime

	APIp50, APIp99     time.Duration // every public API call during creation (writes and reads)
	Writep50, Writep99 time.Duration // create calls
	Readp50, Readp99   time.Duration // reads probed during creation
	HoldReadp99        time.Duration // reads probed in the steady state
	APICalls           int

	HeartbeatsPerSec float64 // handled in the steady state
	HBp50, HBp99     time.Duration
	// Heartbeat latency while creating: many then report new instances
	// running, and those wait for their group's commit.
	HBCreatep50, HBCreatep99 time.Duration
	// ... of those, the heartbeats that reported nothing new.
	HBQuietCreatep50, HBQuietCreatep99 time.Duration
	// ... and of those, the ones sent to the leader itself, not forwarded.
	HBQuietLeaderp50, HBQuietLeaderp99 time.Duration
	// HoldCommits is how many raft entries the cluster committed during
	// the steady state: heartbeats that change nothing must add none.
	HoldCommits       int64
	HBErrors, HBLate  int64
	QueryErrors       int64
	FirstAnswerp99    time.Duration // a host's first desired state (no wait)
	LeaderCPUCreate   float64       // cores busy during creation
	LeaderCPUHold     float64       // cores busy in the steady state
	FollowerCPUCreate float64       // cores the two followers used together during creation
	LastAgentError    string        // the last heartbeat or blocking query error seen
	BenchCPUCreate    float64       // cores this process (the simulated fleet) used during creation
	BenchCPUHold      float64       // ... in the steady state
	LoadAverage       string        // /proc/loadavg at the end: how busy the machine was
	LeaderRSS         int64         // after the hold
	LeaderPeakRSS     int64         // VmHWM
	RaftDBBytes       int64         // the leader's raft.db
	SnapshotDirBytes  int64         // the leader's snapshots directory
	SnapshotBytes     int64         // GET /v1/cluster/snapshot
	SnapshotTime      time.Duration // its download (encode on the leader included)
	RestoreTime       time.Duration // decoding it into a fresh FSM (this process)
	CatchUpTime       time.Duration // a new node joining until it applied the leader's index
	FinalStateIndex   uint64
	ProfileWrittenTo  string
	HostsDownObserved int    // hosts the leader reported down at the end (0 unless heartbeats starved)
	LeaderAtEnd       string // differs from Leader when an election happened: CPU and memory are then the first leader's
	Leader            string
}

func (c *Config) defaults() {
	if c.Fronts == 0 {
		c.Fronts = max(1, c.Hosts/100)
	}
	backs := c.Hosts - c.Fronts
	if c.PerInstallation == 0 {
		c.PerInstallation = min(100, backs)
	}
	c.PerInstallation = min(c.PerInstallation, backs, 256)
	if c.Writers == 0 {
		c.Writers = 8
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.HBWorkers == 0 {
		c.HBWorkers = min(64, c.Hosts)
	}
	if c.Hold == 0 {
		c.Hold = 15 * time.Second
	}
	if c.PlaceTimeout == 0 {
		c.PlaceTimeout = 5 * time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Validate checks the sizes.
func (c Config) Validate() error {
	switch {
	case c.Hosts < 2:
		return errors.New("--hosts must be at least 2 (a Front and a Back)")
	case c.Instances < 1:
		return errors.New("--instances must be at least 1")
	case c.CoreBin == "" || c.Dir == "":
		return errors.New("a potluck-core binary and a working directory are needed")
	}
	c.defaults()
	if backs := c.Hosts - c.Fronts; c.Instances > backs*(fsm.MaxPort-fsm.MinPort+1) {
		return fmt.Errorf("%d instances do not fit on %d Backs (at most %d ports each)", c.Instances, backs, fsm.MaxPort-fsm.MinPort+1)
	}
	return nil
}

// Run runs one measurement: start the cluster, register, create, hold,
// snapshot, catch up, stop.
func Run(ctx context.Context, cfg Config) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	cfg.defaults()
	res.Hosts, res.Instances = cfg.Hosts, cfg.Instances
	progress := func(format string, a ...any) {
		fmt.Fprintf(cfg.Progress, "fleet N=%d M=%d: "+format+"\n", append([]any{cfg.Hosts, cfg.Instances}, a...)...)
	}
	cl, err := startCluster(ctx, cfg.CoreBin, cfg.Dir, 3)
	if err != nil {
		return res, err
	}
	defer cl.stop()
	leader, err := cl.leader(ctx)
	if err != nil {
		return res, err
	}
	api := leader.api
	pid := leader.proc.PID()
	res.Leader = leader.id
	progress("cluster up, leader %s (pid %d)", leader.id, pid)

	// Register every host through the public API, Fronts first.
	hosts := make([]*simHost, cfg.Hosts)
	for i := range hosts {
		k, err := meshnet.GeneratePrivateKey()
		if err != nil {
			return res, err
		}
		h := &simHost{key: k.Public().String(), back: i >= cfg.Fronts, node: cl.nodes[i%len(cl.nodes)]}
		h.name = fmt.Sprintf("back%05d", i)
		if !h.back {
			h.name = fmt.Sprintf("front%04d", i)
		}
		hosts[i] = h
	}
	// Every host follows its desired state and heartbeats from the moment
	// it is registered, as an agent does (registering thousands takes
	// longer than the heartbeat TTL).
	sim := newFleetSim(hosts, cfg.Heartbeat)
	sim.leader = leader
	simCtx, stopSim := context.WithCancel(ctx)
	var simWG sync.WaitGroup
	defer func() { stopSim(); simWG.Wait() }()
	for w := range cfg.HBWorkers {
		var mine []*simHost
		for i := w; i < len(hosts); i += cfg.HBWorkers {
			mine = append(mine, hosts[i])
		}
		simWG.Add(1)
		go func() {
			defer simWG.Done()
			// Spread the workers' rounds over the interval.
			if sleep(simCtx, time.Duration(w)*cfg.Heartbeat/time.Duration(cfg.HBWorkers)) {
				sim.heartbeats(simCtx, mine)
			}
		}()
	}
	start := time.Now()
	if err := parallel(ctx, cfg.Writers, len(hosts), func(ctx context.Context, i int) error {
		h := hosts[i]
		req := apiclient.RegisterHostRequest{Name: h.name, Role: "back", PublicKey: h.key, CPUs: 64, MemoryMB: 256 << 10, DiskMB: 1 << 20}
		if !h.back {
			req.Role, req.Endpoint = "front", fmt.Sprintf("127.0.0.1:%d", 20000+i)
		}
		if _, err := cl.nodes[i%len(cl.nodes)].api.RegisterHost(ctx, req); err != nil {
			return err
		}
		h.registered.Store(true)
		simWG.Add(1)
		go func() { defer simWG.Done(); sim.follow(simCtx, h) }()
		return nil
	}); err != nil {
		return res, fmt.Errorf("register hosts: %w", err)
	}
	res.RegisterTime = time.Since(start)
	progress("%d hosts registered in %s", cfg.Hosts, res.RegisterTime.Round(time.Millisecond))

	if err := waitFor(ctx, time.Minute, func() bool { return sim.stats.answers.Load() >= int64(len(hosts)) }); err != nil {
		return res, fmt.Errorf("every host's first desired state: %w (%d answers, %d errors)", err, sim.stats.answers.Load(), sim.stats.queryErrs.Load())
	}
	res.FirstAnswerp99, _ = sim.stats.queryLat.pct(99)
	progress("every host follows its desired state; heartbeats every %s", cfg.Heartbeat)

	if _, err := api.CreateImageApp(ctx, "fleet-app", "registry.example/fleet-app:1", 8080); err != nil {
		return res, fmt.Errorf("create app: %w", err)
	}
	var sizes []int
	for left := cfg.Instances; left > 0; left -= cfg.PerInstallation {
		sizes = append(sizes, min(left, cfg.PerInstallation))
	}
	res.Installations = len(sizes)

	// Creation: Writers callers create the installations through all
	// three nodes (followers forward), while a reader probes reads.
	writes, reads := newLatencies(), newLatencies()
	var probeWG sync.WaitGroup
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer func() { stopProbe(); probeWG.Wait() }()
	var created atomic.Int64
	probeWG.Add(1)
	go func() { defer probeWG.Done(); probeReads(probeCtx, cl, &created, reads) }()
	var profile chan error
	if cfg.ProfileOut != "" {
		profile = make(chan error, 1)
		go func() { profile <- fetchProfile(ctx, leader, cfg.ProfileOut, 20*time.Second) }()
	}
	before, _ := sampleProc(pid)
	self, _ := sampleProc(os.Getpid())
	var followers []*coreNode
	var fBefore []procSample
	for _, nd := range cl.nodes {
		if nd != leader {
			followers = append(followers, nd)
			smp, _ := sampleProc(nd.proc.PID())
			fBefore = append(fBefore, smp)
		}
	}
	sim.stats.hbLatency.reset()
	sim.stats.hbQuiet.reset()
	sim.stats.hbQuietLeader.reset()
	start = time.Now()
	// Progress every 10 s while creating, so a run that cannot finish
	// still shows its rate and where it stood.
	var done atomic.Int64
	tickCtx, stopTick := context.WithCancel(ctx)
	defer stopTick()
	go func() {
		last := before
		for n := 1; n < 10_000 && sleep(tickCtx, 10*time.Second); n++ {
			now, _ := sampleProc(pid)
			placed := done.Load()
			progress("creating: %d of %d instances committed after %s (%.0f/s so far), leader %.2f cores, RSS %d MiB",
				placed, cfg.Instances, time.Since(start).Round(time.Second), float64(placed)/time.Since(start).Seconds(), cpuShare(last, now), now.rss>>20)
			last = now
		}
	}()
	if err := parallel(ctx, cfg.Writers, len(sizes), func(ctx context.Context, i int) error {
		name := installationName(i)
		t := time.Now()
		_, err := cl.nodes[i%len(cl.nodes)].api.CreateInstallation(ctx, apiclient.CreateInstallationRequest{
			Name: name, App: "fleet-app", Fronts: 1, Backs: sizes[i], Domain: name + ".fleet.test", CPUs: 0.1, MemoryMB: 64,
		})
		writes.add(time.Since(t))
		created.Store(int64(i + 1))
		if err == nil {
			done.Add(int64(sizes[i]))
		}
		return err
	}); err != nil {
		st, _ := api.Status(ctx)
		return res, fmt.Errorf("create installations: %w (hosts by status: %v)", err, st.Hosts)
	}
	res.CreateTime = time.Since(start)
	stopTick()
	res.PlacementsPerSec = float64(cfg.Instances) / res.CreateTime.Seconds()
	progress("%d installations (%d instances) committed in %s: %.0f placements/s", len(sizes), cfg.Instances, res.CreateTime.Round(time.Millisecond), res.PlacementsPerSec)
	want := int64(cfg.Instances)
	if err := waitFor(ctx, cfg.PlaceTimeout, func() bool { return sim.stats.seen.Load() >= want }); err != nil {
		return res, fmt.Errorf("instances in desired states: %d of %d: %w", sim.stats.seen.Load(), want, err)
	}
	res.AllPlacedTime = time.Since(start)
	if err := waitFor(ctx, cfg.PlaceTimeout, func() bool { return sim.stats.running.Load() >= want }); err != nil {
		return res, fmt.Errorf("instances running: %d of %d: %w", sim.stats.running.Load(), want, err)
	}
	res.AllRunningTime = time.Since(start)
	after, _ := sampleProc(pid)
	res.LeaderCPUCreate = cpuShare(before, after)
	selfAfter, _ := sampleProc(os.Getpid())
	res.BenchCPUCreate = cpuShare(self, selfAfter)
	for i, nd := range followers {
		smp, _ := sampleProc(nd.proc.PID())
		res.FollowerCPUCreate += cpuShare(fBefore[i], smp)
	}
	stopProbe()
	probeWG.Wait()
	progress("all placed after %s, all running after %s", res.AllPlacedTime.Round(time.Millisecond), res.AllRunningTime.Round(time.Millisecond))
	res.Writep50, _ = writes.pct(50)
	res.Writep99, _ = writes.pct(99)
	res.Readp50, _ = reads.pct(50)
	res.Readp99, _ = reads.pct(99)
	all := newLatencies()
	all.merge(writes)
	all.merge(reads)
	res.APIp50, _ = all.pct(50)
	res.APIp99, res.APICalls = all.pct(99)
	if profile != nil {
		if err := <-profile; err != nil {
			progress("profile: %v", err)
		} else {
			res.ProfileWrittenTo = cfg.ProfileOut
		}
	}

	res.HBCreatep50, _ = sim.stats.hbLatency.pct(50)
	res.HBCreatep99, _ = sim.stats.hbLatency.pct(99)
	res.HBQuietCreatep50, _ = sim.stats.hbQuiet.pct(50)
	res.HBQuietCreatep99, _ = sim.stats.hbQuiet.pct(99)
	res.HBQuietLeaderp50, _ = sim.stats.hbQuietLeader.pct(50)
	res.HBQuietLeaderp99, _ = sim.stats.hbQuietLeader.pct(99)

	// Steady state: heartbeats and reads only.
	sim.stats.hbLatency.reset()
	index0 := uint64(0)
	if st, err := api.Status(ctx); err == nil {
		index0 = st.StateIndex
	}
	hb0, late0 := sim.stats.heartbeats.Load(), sim.stats.hbLate.Load()
	holdReads := newLatencies()
	probeCtx2, stopProbe2 := context.WithCancel(ctx)
	created.Store(int64(len(sizes)))
	probeWG.Add(1)
	go func() { defer probeWG.Done(); probeReads(probeCtx2, cl, &created, holdReads) }()
	before, _ = sampleProc(pid)
	self, _ = sampleProc(os.Getpid())
	sleep(ctx, cfg.Hold)
	after, _ = sampleProc(pid)
	selfAfter, _ = sampleProc(os.Getpid())
	res.BenchCPUHold = cpuShare(self, selfAfter)
	stopProbe2()
	probeWG.Wait()
	res.LeaderCPUHold = cpuShare(before, after)
	res.HeartbeatsPerSec = float64(sim.stats.heartbeats.Load()-hb0) / after.at.Sub(before.at).Seconds()
	res.HBp50, _ = sim.stats.hbLatency.pct(50)
	res.HBp99, _ = sim.stats.hbLatency.pct(99)
	res.HoldReadp99, _ = holdReads.pct(99)
	res.HBErrors, res.HBLate, res.QueryErrors = sim.stats.hbErrs.Load(), sim.stats.hbLate.Load()-late0, sim.stats.queryErrs.Load()
	if e, ok := sim.stats.lastErr.Load().(string); ok {
		res.LastAgentError = e
	}
	res.LeaderRSS, res.LeaderPeakRSS = after.rss, after.hwm
	if st, err := api.Status(ctx); err == nil {
		res.HostsDownObserved = st.Hosts["down"]
		res.FinalStateIndex = st.StateIndex
		if index0 > 0 {
			res.HoldCommits = int64(st.StateIndex) - int64(index0)
		}
		res.LeaderAtEnd = st.Leader
	}

	progress("steady state: %.0f heartbeats/s (p99 %s), %d raft entries, leader %.2f cores, RSS %d MiB",
		res.HeartbeatsPerSec, res.HBp99.Round(time.Microsecond), res.HoldCommits, res.LeaderCPUHold, res.LeaderRSS>>20)

	// Snapshot: download, restore into a fresh FSM, sizes on disk.
	if err := snapshot(ctx, leader, &res); err != nil {
		return res, err
	}
	res.RaftDBBytes = fileSize(filepath.Join(leader.dataDir, "raft", "raft.db"))
	res.SnapshotDirBytes = dirSize(filepath.Join(leader.dataDir, "raft", "snapshots"))
	progress("snapshot %d bytes in %s, restored in %s", res.SnapshotBytes, res.SnapshotTime.Round(time.Millisecond), res.RestoreTime.Round(time.Millisecond))

	// A new node joins and catches up while the fleet keeps going.
	if err := catchUp(ctx, cl, leader, &res); err != nil {
		return res, err
	}
	progress("a new node caught up in %s", res.CatchUpTime.Round(time.Millisecond))
	res.LoadAverage = procstat.LoadAvg()
	return res, nil
}

func installationName(i int) string { return fmt.Sprintf("fl-%05d", i) }

// probeReads reads a random installation created so far from a random
// node, 20 times a second, until ctx ends.
func probeReads(ctx context.Context, cl *coreCluster, created *atomic.Int64, out *latencies) {
	for range 1_000_000 {
		if !sleep(ctx, 50*time.Millisecond) {
			return
		}
		n := created.Load()
		if n == 0 {
			continue
		}
		nd := cl.nodes[rand.IntN(len(cl.nodes))]
		t := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, _, err := nd.api.Installation(rctx, installationName(rand.IntN(int(n))), nil)
		cancel()
		if err == nil {
			out.add(time.Since(t))
		}
	}
}

// parallel runs f for 0..n-1 on workers goroutines; the first error stops it.
func parallel(ctx context.Context, workers, n int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// waitFor polls cond every 20 ms for up to limit.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
	return nil
}

func cpuShare(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return float64(b.cpu-a.cpu) / float64(wall)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// fetchProfile writes the leader's CPU profile over d to path.
func fetchProfile(ctx context.Context, nd *coreNode, path string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", nd.agent, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// snapshot downloads a backup from the leader and decodes it into a fresh
// FSM, as a restore does.
func snapshot(ctx context.Context, nd *coreNode, res *Result) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.http+"/v1/cluster/snapshot", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	t := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<30))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("snapshot: HTTP %d: %v", resp.StatusCode, err)
	}
	res.SnapshotTime, res.SnapshotBytes = time.Since(t), int64(len(data))
	t = time.Now()
	_, state, err := cluster.ReadBackup(bytes.NewReader(data), 4<<30)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := fsm.New().Restore(io.NopCloser(bytes.NewReader(state))); err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	res.RestoreTime = time.Since(t)
	return nil
}

// catchUp starts a fourth core node that joins the group and waits until
// it has applied the index the leader had when it started.
func catchUp(ctx context.Context, cl *coreCluster, leader *coreNode, res *Result) error {
	st, err := leader.api.Status(ctx)
	if err != nil {
		return fmt.Errorf("catch-up: %w", err)
	}
	target := st.AppliedIndex
	nd, err := cl.newNode("core4")
	if err != nil {
		return err
	}
	cl.nodes = append(cl.nodes, nd) // stopped with the others
	t := time.Now()
	if err := cl.start(nd, "--join", "http://"+leader.http); err != nil {
		return err
	}
	err = waitFor(ctx, 2*time.Minute, func() bool {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		s, err := nd.api.Status(sctx)
		return err == nil && s.AppliedIndex >= target
	})
	if err != nil {
		return fmt.Errorf("catch-up of a new node: %w\n%s", err, nd.logText())
	}
	res.CatchUpTime = time.Since(t)
	return nil
}
