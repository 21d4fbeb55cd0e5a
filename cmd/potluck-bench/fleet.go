package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"potluck/bench/fleet"
	"potluck/internal/cli"
	"potluck/internal/human"
)

// runFleet is `potluck-bench fleet`: the control plane at fleet scale
// (bench/fleet), one run per --hosts/--instances pair, then how each figure
// grows.
func runFleet(ctx context.Context, args []string, env cli.Env) error {
	fs := cli.NewFlagSet("potluck-bench fleet", "Usage: potluck-bench fleet --hosts N[,N...] --instances M[,M...] [flags]\n\n"+`potluck-bench fleet starts three potluck-core processes on loopback, registers
N simulated hosts through the public API, creates installations totalling M
instances, and keeps every host's blocking query and heartbeats flowing
through the real agent API handlers (the core's bench agent listener: no
tunnel). It prints placements/s, the time to every instance placed and
running, API p50/p99 under that load, heartbeat handling, the leader's CPU
and memory, raft log and snapshot size, snapshot and restore time and a new
node's catch-up time; with several sizes, how each figure grows. Loopback
only; every loop is bounded.`, `Examples:
  potluck-bench fleet --hosts 100 --instances 2000
  potluck-bench fleet --hosts 100,1000 --instances 2000,20000 --profile /tmp/fleet`)
	var hostsList, instList cli.StringList
	var cfg fleet.Config
	var coreBin, profileDir string
	fs.Var(&hostsList, "hosts", "simulated hosts per run (comma-separated list; Fronts included)")
	fs.Var(&instList, "instances", "instances per run, paired with --hosts (one value applies to every run)")
	fs.IntVar(&cfg.PerInstallation, "per-installation", 0, "instances per installation (0: min(100, Backs))")
	fs.IntVar(&cfg.Writers, "writers", 8, "concurrent API writers")
	fs.DurationVar(&cfg.Heartbeat, "heartbeat", 5*time.Second, "each host's heartbeat interval (the agent's default is 5s)")
	fs.DurationVar(&cfg.Hold, "hold", 15*time.Second, "steady state measured after every instance runs")
	fs.DurationVar(&cfg.PlaceTimeout, "place-timeout", 5*time.Minute, "bound on placing and starting every instance")
	fs.StringVar(&coreBin, "core-bin", "", "potluck-core binary (default: go build it from this repository)")
	fs.StringVar(&profileDir, "profile", "", "directory for the leader's CPU profile of each run's creation phase (fleet-N-M.pprof)")
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	ns, err := numbers("hosts", hostsList, strconv.Atoi)
	if err != nil {
		return err
	}
	ms, err := numbers("instances", instList, strconv.Atoi)
	if err != nil {
		return err
	}
	if len(ns) == 0 || len(ms) == 0 {
		return cli.Usagef("--hosts and --instances are required")
	}
	if len(ms) == 1 {
		for len(ms) < len(ns) {
			ms = append(ms, ms[0])
		}
	}
	if len(ms) != len(ns) {
		return cli.Usagef("--instances needs one value or as many as --hosts")
	}
	work, err := os.MkdirTemp("", "potluck-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if coreBin == "" {
		coreBin = filepath.Join(work, "potluck-core")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", coreBin, "potluck/cmd/potluck-core").CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build potluck-core (run from the repository, or give --core-bin): %w\n%s", err, out)
		}
	}
	var results []fleet.Result
	for i := range ns {
		c := cfg
		c.Hosts, c.Instances, c.CoreBin, c.Progress = ns[i], ms[i], coreBin, env.Stderr
		c.Dir = filepath.Join(work, fmt.Sprintf("run%d", i))
		if profileDir != "" {
			c.ProfileOut = filepath.Join(profileDir, fmt.Sprintf("fleet-%d-%d.pprof", ns[i], ms[i]))
		}
		if err := c.Validate(); err != nil {
			return &cli.UsageError{Err: err}
		}
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return err
		}
		r, err := fleet.Run(ctx, c)
		if err != nil {
			return fmt.Errorf("fleet N=%d M=%d: %w", ns[i], ms[i], err)
		}
		results = append(results, r)
		_ = os.RemoveAll(c.Dir)
	}
	printFleet(env.Stdout, results)
	last := results[len(results)-1]
	fmt.Fprintf(env.Stdout, "fleet: %d hosts, %d instances, %.0f placements/s, API p99 %d ms\n",
		last.Hosts, last.Instances, last.PlacementsPerSec, last.APIp99.Milliseconds())
	return nil
}

// printFleet prints one column per run and, with several runs, each
// figure's growth from the first run to the last against the growth of N
// and M.
func printFleet(w io.Writer, rs []fleet.Result) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	type row struct {
		name string
		val  func(fleet.Result) float64
		show func(fleet.Result) string
	}
	rows := []row{
		{"installations", func(r fleet.Result) float64 { return float64(r.Installations) }, func(r fleet.Result) string { return strconv.Itoa(r.Installations) }},
		{"register all hosts", func(r fleet.Result) float64 { return r.RegisterTime.Seconds() }, func(r fleet.Result) string { return sec(r.RegisterTime) }},
		{"placements/s (committed)", func(r fleet.Result) float64 { return r.PlacementsPerSec }, func(r fleet.Result) string { return fmt.Sprintf("%.0f", r.PlacementsPerSec) }},
		{"API calls -> all committed", func(r fleet.Result) float64 { return r.CreateTime.Seconds() }, func(r fleet.Result) string { return sec(r.CreateTime) }},
		{"API calls -> all placed (agents see them)", func(r fleet.Result) float64 { return r.AllPlacedTime.Seconds() }, func(r fleet.Result) string { return sec(r.AllPlacedTime) }},
		{"API calls -> all running (reported back)", func(r fleet.Result) float64 { return r.AllRunningTime.Seconds() }, func(r fleet.Result) string { return sec(r.AllRunningTime) }},
		{"API p50 under load", func(r fleet.Result) float64 { return float64(r.APIp50) }, func(r fleet.Result) string { return ms(r.APIp50) }},
		{"API p99 under load", func(r fleet.Result) float64 { return float64(r.APIp99) }, func(r fleet.Result) string { return ms(r.APIp99) }},
		{"  create p50 / p99", func(r fleet.Result) float64 { return float64(r.Writep99) }, func(r fleet.Result) string { return ms(r.Writep50) + " / " + ms(r.Writep99) }},
		{"  read p50 / p99", func(r fleet.Result) float64 { return float64(r.Readp99) }, func(r fleet.Result) string { return ms(r.Readp50) + " / " + ms(r.Readp99) }},
		{"read p99, steady state", func(r fleet.Result) float64 { return float64(r.HoldReadp99) }, func(r fleet.Result) string { return ms(r.HoldReadp99) }},
		{"heartbeats handled/s", func(r fleet.Result) float64 { return r.HeartbeatsPerSec }, func(r fleet.Result) string { return fmt.Sprintf("%.0f", r.HeartbeatsPerSec) }},
		{"heartbeat p50 / p99, steady state", func(r fleet.Result) float64 { return float64(r.HBp99) }, func(r fleet.Result) string { return ms(r.HBp50) + " / " + ms(r.HBp99) }},
		{"heartbeat p50 / p99, creating", func(r fleet.Result) float64 { return float64(r.HBCreatep99) }, func(r fleet.Result) string { return ms(r.HBCreatep50) + " / " + ms(r.HBCreatep99) }},
		{"  of them reporting nothing new", func(r fleet.Result) float64 { return float64(r.HBQuietCreatep99) }, func(r fleet.Result) string {
			return ms(r.HBQuietCreatep50) + " / " + ms(r.HBQuietCreatep99)
		}},
		{"    sent to the leader (not forwarded)", func(r fleet.Result) float64 { return float64(r.HBQuietLeaderp99) }, func(r fleet.Result) string {
			return ms(r.HBQuietLeaderp50) + " / " + ms(r.HBQuietLeaderp99)
		}},
		{"raft entries in the steady state", func(r fleet.Result) float64 { return float64(r.HoldCommits) }, func(r fleet.Result) string { return strconv.FormatInt(r.HoldCommits, 10) }},
		{"heartbeat errors / late rounds", func(r fleet.Result) float64 { return float64(r.HBErrors) }, func(r fleet.Result) string { return fmt.Sprintf("%d / %d", r.HBErrors, r.HBLate) }},
		{"leader CPU, creating (cores)", func(r fleet.Result) float64 { return r.LeaderCPUCreate }, func(r fleet.Result) string { return fmt.Sprintf("%.2f", r.LeaderCPUCreate) }},
		{"followers' CPU, creating (cores, both)", func(r fleet.Result) float64 { return r.FollowerCPUCreate }, func(r fleet.Result) string { return fmt.Sprintf("%.2f", r.FollowerCPUCreate) }},
		{"leader CPU, steady (cores)", func(r fleet.Result) float64 { return r.LeaderCPUHold }, func(r fleet.Result) string { return fmt.Sprintf("%.2f", r.LeaderCPUHold) }},
		{"simulated fleet CPU, creating / steady (cores)", func(r fleet.Result) float64 { return r.BenchCPUCreate }, func(r fleet.Result) string {
			return fmt.Sprintf("%.2f / %.2f", r.BenchCPUCreate, r.BenchCPUHold)
		}},
		{"load average at the end", func(r fleet.Result) float64 { return 0 }, func(r fleet.Result) string { return r.LoadAverage }},
		{"leader RSS / peak", func(r fleet.Result) float64 { return float64(r.LeaderPeakRSS) }, func(r fleet.Result) string {
			return human.Bytes(r.LeaderRSS) + " / " + human.Bytes(r.LeaderPeakRSS)
		}},
		{"raft.db (leader)", func(r fleet.Result) float64 { return float64(r.RaftDBBytes) }, func(r fleet.Result) string { return human.Bytes(r.RaftDBBytes) }},
		{"raft snapshots dir (leader)", func(r fleet.Result) float64 { return float64(r.SnapshotDirBytes) }, func(r fleet.Result) string { return human.Bytes(r.SnapshotDirBytes) }},
		{"snapshot (backup) size", func(r fleet.Result) float64 { return float64(r.SnapshotBytes) }, func(r fleet.Result) string { return human.Bytes(r.SnapshotBytes) }},
		{"snapshot time", func(r fleet.Result) float64 { return float64(r.SnapshotTime) }, func(r fleet.Result) string { return ms(r.SnapshotTime) }},
		{"restore time", func(r fleet.Result) float64 { return float64(r.RestoreTime) }, func(r fleet.Result) string { return ms(r.RestoreTime) }},
		{"new node catch-up", func(r fleet.Result) float64 { return float64(r.CatchUpTime) }, func(r fleet.Result) string { return sec(r.CatchUpTime) }},
		{"leader at start / at the end", func(r fleet.Result) float64 { return 0 }, func(r fleet.Result) string { return r.Leader + " / " + r.LeaderAtEnd }},
		{"hosts down at the end", func(r fleet.Result) float64 { return float64(r.HostsDownObserved) }, func(r fleet.Result) string { return strconv.Itoa(r.HostsDownObserved) }},
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "figure")
	for _, r := range rs {
		fmt.Fprintf(tw, "\tN=%d M=%d", r.Hosts, r.Instances)
	}
	if len(rs) > 1 {
		fmt.Fprint(tw, "\tgrowth (last/first)")
	}
	fmt.Fprintln(tw)
	first, last := rs[0], rs[len(rs)-1]
	for _, row := range rows {
		fmt.Fprint(tw, row.name)
		for _, r := range rs {
			fmt.Fprint(tw, "\t"+row.show(r))
		}
		if len(rs) > 1 {
			if a := row.val(first); a != 0 {
				fmt.Fprintf(tw, "\t×%.2f", row.val(last)/a)
			} else {
				fmt.Fprint(tw, "\t-")
			}
		}
		fmt.Fprintln(tw)
	}
	_ = tw.Flush()
	for _, r := range rs {
		if r.LastAgentError != "" {
			fmt.Fprintf(w, "N=%d M=%d: last agent API error: %s\n", r.Hosts, r.Instances, strings.TrimSpace(r.LastAgentError))
		}
	}
	if len(rs) > 1 {
		fmt.Fprintf(w, "N grew ×%.1f and M ×%.1f from the first run to the last.\n",
			float64(last.Hosts)/float64(first.Hosts), float64(last.Instances)/float64(first.Instances))
	}
}
