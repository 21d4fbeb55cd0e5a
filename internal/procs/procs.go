// Package procs tunes the Go runtime's scheduling for the agents, whose
// requests cross several processes: Run adapts GOMAXPROCS to how busy the
// process is, and KeepSysmonAwake keeps the runtime's system monitor from
// sleeping deeply between requests (sysmon.go says why).
//
// Why Run: a mesh node hands every packet between several goroutines (wireguard-go's
// reader, encryption and sender goroutines, gVisor's TCP processor, the
// reader of the connection). While the process is mostly idle, every such
// hand-off finds an idle P, and the runtime wakes a thread to spin for the
// readied goroutine, which then sleeps again: on a lone request through the
// mesh that is about 15 context switches per request in each of a Front
// and a Back with two Ps, against 6.5 with one (docs/benchmarks.md, "Fourth
// pass: a lone request waits for threads to wake"). With one P the hand-offs are plain
// goroutine switches on one thread. One P is too few once the process
// needs more than a core (many connections), so Run gives it one P while
// it uses less than Config.Down of a core and every P again once one P is
// nearly saturated. A single stream never saturates its P: it is paced by
// the hand-offs between the processes it crosses, and at one P it moves
// half of what it moves with two at 0.4 of a core; so a process that
// counts its work (Config.Work: a mesh node's tunnel bytes) gets every P
// while it moves more than Config.UpWork per second, whatever its CPU.
package procs

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"runtime"
	"time"
)

// Config tunes Run. The zero value is the default.
type Config struct {
	// Interval is how often the process's CPU time is sampled (default
	// 100ms: a 64 MiB stream through the mesh lasts well under a second,
	// and spends its first interval at one P).
	Interval time.Duration
	// Max is the GOMAXPROCS of a busy process (default: the value at
	// Run's start, the runtime's own choice).
	Max int
	// Up is the share of one core the process must use in an interval
	// at one P to be given Max (default 0.8): one P nearly saturated.
	Up float64
	// Down is the share of one core below which a process at Max returns
	// to one P (default 0.7), after DownAfter such intervals in a row
	// (default 10, one second). With Max Ps the same work costs more CPU,
	// not less (the spinning threads: a lone request's stream of packets
	// keeps an agent at 0.5–0.6 of a core with two Ps and 0.3 with one),
	// so any Down below Up keeps a steady load from switching back and
	// forth, and one close to Up lets the idle-but-spinning process down.
	Down      float64
	DownAfter int
	// Work, when set, counts the work done so far (a mesh node's
	// TunnelBytes); read once per Interval. While the process does UpWork
	// or more of it per second it runs at Max (default 32 MiB/s: a lone
	// request loop through the mesh moves 1–3 MB/s, a single stream
	// 75 MB/s and more).
	Work   func() uint64
	UpWork float64
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.Interval = cmp.Or(c.Interval, 100*time.Millisecond)
	c.Max = cmp.Or(c.Max, runtime.GOMAXPROCS(0))
	c.Up, c.Down = cmp.Or(c.Up, 0.8), cmp.Or(c.Down, 0.7)
	c.DownAfter = cmp.Or(c.DownAfter, 10)
	c.UpWork = cmp.Or(c.UpWork, 32<<20)
	if c.Work == nil {
		c.Work = func() uint64 { return 0 }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Run adapts GOMAXPROCS until ctx is done, then restores Max. It returns
// at once, changing nothing, when the environment sets GOMAXPROCS (the
// operator's choice wins), when Max is 1, or where the process's CPU time
// cannot be read. Setting GOMAXPROCS ends the runtime's own updates of it from
// a changed cgroup CPU limit (Go 1.25): Max stays what it was at the start.
func Run(ctx context.Context, cfg Config) {
	cfg = cfg.withDefaults()
	if os.Getenv("GOMAXPROCS") != "" || cfg.Max <= 1 {
		return
	}
	last, ok := cpuTime()
	if !ok {
		return
	}
	g := governor{cfg: cfg, procs: cfg.Max}
	defer runtime.GOMAXPROCS(cfg.Max)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	prev, lastWork := time.Now(), cfg.Work()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu, _ := cpuTime()
			work := cfg.Work()
			secs := now.Sub(prev).Seconds()
			busy := (cpu - last).Seconds() / secs
			rate := float64(work-lastWork) / secs
			last, lastWork, prev = cpu, work, now
			if n := g.next(busy, rate); n != runtime.GOMAXPROCS(0) {
				runtime.GOMAXPROCS(n)
				cfg.Logger.Debug("GOMAXPROCS adapted", "procs", n, "cores_used", busy, "work_per_second", rate)
			}
		}
	}
}

// governor decides, interval by interval, how many Ps the process gets.
type governor struct {
	cfg   Config
	procs int // current
	quiet int // intervals in a row below Down at Max
}

// next takes the cores the process used in the last interval and the work
// it did per second, and returns the GOMAXPROCS for the next one.
func (g *governor) next(busy, work float64) int {
	switch {
	case work >= g.cfg.UpWork:
		g.procs, g.quiet = g.cfg.Max, 0
	case g.procs == 1 && busy >= g.cfg.Up:
		g.procs = g.cfg.Max
	case g.procs == 1:
	case busy < g.cfg.Down:
		g.quiet++
		if g.quiet >= g.cfg.DownAfter {
			g.procs, g.quiet = 1, 0
		}
	default:
		g.quiet = 0
	}
	return g.procs
}
