package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"potluck/bench/procstat"
	"potluck/bench/wrk"
)

// measured is one contender's run: wrk's figures and the CPU time spent per
// request by the contender's processes, by the Backs among them (mesh
// only), by docker-proxy and by the app's containers.
type measured struct {
	wrk.Result
	cpu, backs, dockerProxy, app time.Duration
	// meshConns is how many tunnel connections the Backs accepted during
	// the run (mesh contenders): few means keep-alive reuse works.
	meshConns float64
}

// rounds loads every contender once per round for app a, rotating who goes
// first so that drift in the machine's load hits all of them, after a short
// warm-up of each, and prints a line per run.
func (r *rig) rounds(ctx context.Context, a app) (map[string][]measured, error) {
	out := r.cfg.Out
	fmt.Fprintf(out, "\n## %s app (%s), wrk -t%d -c%d -d%s, %d rounds\n", a.name, a.domain, r.cfg.Threads, r.cfg.Connections, r.cfg.Duration, r.cfg.Rounds)
	for _, name := range r.contenders {
		if _, err := r.wrk(ctx, r.cfg.Threads, r.cfg.Connections, time.Second, name, a); err != nil {
			return nil, fmt.Errorf("warm-up %s: %w", name, err)
		}
	}
	fmt.Fprintf(out, "%-6s %-17s %9s %9s %9s %9s %9s %9s %9s %6s %s\n", "round", "contender", "req/s", "p50", "p99",
		"CPU/req", "(Backs)", "d-proxy", "app", "conns", "errors")
	results := map[string][]measured{}
	for round := range r.cfg.Rounds {
		order := rotate(r.contenders, round)
		fmt.Fprintf(out, "# round %d at %s, load average %s\n", round+1, time.Now().UTC().Format("15:04:05"), procstat.LoadAvg())
		for _, name := range order {
			m, err := r.measure(ctx, a, name)
			if err != nil {
				return nil, fmt.Errorf("%s round %d: %w", name, round+1, err)
			}
			results[name] = append(results[name], m)
			fmt.Fprintf(out, "%-6d %-17s %9.0f %9s %9s %9s %9s %9s %9s %6s %d\n", round+1, name, m.RPS, wrk.Short(m.P50), wrk.Short(m.P99),
				wrk.Short(m.cpu), backsCol(name, m.backs), wrk.Short(m.dockerProxy), wrk.Short(m.app), connsCol(name, m.meshConns), m.Errors)
		}
	}
	return results, nil
}

// wrk loads contender name for d with Host: a.domain.
func (r *rig) wrk(ctx context.Context, threads, conns int, d time.Duration, name string, a app) (wrk.Result, error) {
	return wrk.Run(ctx, wrk.Options{Bin: r.cfg.Wrk, Threads: threads, Conns: conns, Duration: d, URL: "http://" + r.addrs[name] + "/", Host: a.domain})
}

// rotate is list starting at its i-th element (modulo its length).
func rotate(list []string, i int) []string {
	i %= len(list)
	return append(slices.Clone(list[i:]), list[:i]...)
}

// throughMesh reports whether a contender is a Front over the mesh, whose
// CPU includes the Backs'.
func throughMesh(name string) bool { return strings.HasPrefix(name, meshName) }

func connsCol(name string, n float64) string {
	if !throughMesh(name) {
		return "-"
	}
	return strconv.FormatFloat(n, 'f', 0, 64)
}

func backsCol(name string, d time.Duration) string {
	if !throughMesh(name) {
		return "-"
	}
	return wrk.Short(d).String()
}

// measure runs wrk against one contender and charges the CPU time the
// processes spent meanwhile to the requests served.
func (r *rig) measure(ctx context.Context, a app, name string) (measured, error) {
	sets := [][]int{r.pids[name], r.backPIDs, r.proxies, a.appPIDs}
	before := make([]int64, len(sets))
	for i, s := range sets {
		before[i] = procstat.CPUTicks(s...)
	}
	var conns0 float64
	if throughMesh(name) {
		var err error
		if conns0, err = forwardAccepted(ctx, r.backMetrics); err != nil {
			return measured{}, err
		}
	}
	res, err := r.wrk(ctx, r.cfg.Threads, r.cfg.Connections, r.cfg.Duration, name, a)
	if err != nil {
		return measured{}, err
	}
	per := make([]time.Duration, len(sets))
	for i, s := range sets {
		per[i] = perRequest(procstat.CPUTicks(s...)-before[i], res.Requests)
	}
	m := measured{Result: res, cpu: per[0], backs: per[1], dockerProxy: per[2], app: per[3]}
	if !throughMesh(name) {
		m.backs = 0
	} else {
		conns1, err := forwardAccepted(ctx, r.backMetrics)
		if err != nil {
			return measured{}, err
		}
		m.meshConns = conns1 - conns0
	}
	return m, nil
}

func perRequest(ticks int64, n float64) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(float64(time.Duration(ticks)*procstat.Tick) / n)
}

// summary prints the medians and the ratios to NGINX, and returns the
// Fronts' ratios by contender.
func (r *rig) summary(a app, results map[string][]measured) map[string]Ratios {
	out := r.cfg.Out
	fmt.Fprintf(out, "median over %d rounds (%s app):\n", r.cfg.Rounds, a.name)
	med := map[string]measured{}
	for _, name := range r.contenders {
		m := median(results[name])
		med[name] = m
		fmt.Fprintf(out, "  %-17s %9.0f req/s  p50 %-8s p99 %-8s CPU/req %-8s", name, m.RPS, wrk.Short(m.P50), wrk.Short(m.P99), wrk.Short(m.cpu))
		if throughMesh(name) {
			fmt.Fprintf(out, " (Backs %s)", wrk.Short(m.backs))
		}
		fmt.Fprintf(out, "  docker-proxy %s  app %s\n", wrk.Short(m.dockerProxy), wrk.Short(m.app))
	}
	n := med[nginxName]
	ratios := map[string]Ratios{}
	for _, name := range r.contenders[1:] {
		m := med[name]
		rt := Ratios{Throughput: m.RPS / n.RPS, P99: float64(m.P99) / float64(n.P99), CPU: float64(m.cpu) / float64(n.cpu)}
		fmt.Fprintf(out, "ratio %s/nginx: throughput %.2fx, p50 %.2fx, p99 %.2fx, CPU/req %.2fx\n", name, rt.Throughput,
			float64(m.P50)/float64(n.P50), rt.P99, rt.CPU)
		ratios[name] = rt
	}
	for name, ms := range results {
		for _, m := range ms {
			if m.Errors > 0 {
				fmt.Fprintf(out, "warning: %s had %d non-2xx or socket errors in a round\n", name, m.Errors)
			}
		}
	}
	return ratios
}

// median takes each figure's median on its own.
func median(ms []measured) measured {
	d := func(get func(measured) time.Duration) time.Duration { return wrk.MedianDuration(ms, get) }
	var m measured
	m.RPS = wrk.MedianOf(ms, func(m measured) float64 { return m.RPS })
	m.P50 = d(func(m measured) time.Duration { return m.P50 })
	m.P99 = d(func(m measured) time.Duration { return m.P99 })
	m.cpu = d(func(m measured) time.Duration { return m.cpu })
	m.backs = d(func(m measured) time.Duration { return m.backs })
	m.dockerProxy = d(func(m measured) time.Duration { return m.dockerProxy })
	m.app = d(func(m measured) time.Duration { return m.app })
	return m
}

// oneConnection measures what a request costs in time with nothing else in
// flight: wrk with one connection against every contender (fast app), in
// rotating order, and what the mesh adds to the Front's p50. Beside p50 and
// p99: the CPU time and the context switches per request of the
// contender's processes (for the mesh, the Front and both Backs), since a
// lone request's latency through the mesh is mostly threads waking.
func (r *rig) oneConnection(ctx context.Context, a app) error {
	out := r.cfg.Out
	d := min(r.cfg.Duration, 2*time.Second)
	fmt.Fprintf(out, "\n## one connection (%s app), wrk -t1 -c1 -d%s, %d rounds\n", a.name, d, r.cfg.Rounds)
	fmt.Fprintf(out, "%-6s %-17s %9s %9s %9s %9s %9s\n", "round", "contender", "req/s", "p50", "p99", "CPU/req", "cs/req")
	results := map[string][]measured{}
	switches := map[string][]float64{}
	for round := range r.cfg.Rounds {
		for _, name := range rotate(r.contenders, round) {
			pids := r.pids[name]
			t0, cs0 := procstat.CPUTicks(pids...), procstat.ContextSwitches(pids...)
			res, err := r.wrk(ctx, 1, 1, d, name, a)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", name, round+1, err)
			}
			m := measured{Result: res, cpu: perRequest(procstat.CPUTicks(pids...)-t0, res.Requests)}
			cs := 0.0
			if res.Requests > 0 {
				cs = float64(procstat.ContextSwitches(pids...)-cs0) / res.Requests
			}
			results[name] = append(results[name], m)
			switches[name] = append(switches[name], cs)
			fmt.Fprintf(out, "%-6d %-17s %9.0f %9s %9s %9s %9.1f\n", round+1, name, res.RPS, wrk.Short(res.P50), wrk.Short(res.P99), wrk.Short(m.cpu), cs)
		}
	}
	fmt.Fprintf(out, "median p50 (CPU/req, cs/req):")
	for _, name := range r.contenders {
		fmt.Fprintf(out, "  %s %s (%s, %.1f)", name, wrk.Short(median(results[name]).P50),
			wrk.Short(time.Duration(wrk.MedianOf(results[name], func(m measured) float64 { return float64(m.cpu) }))), medianOf(switches[name]))
	}
	added := median(results[meshName]).P50 - median(results[standaloneName]).P50
	fmt.Fprintf(out, "\nadded by the mesh at one connection (front-mesh p50 - front-standalone p50): %s\n", wrk.Short(added))
	return nil
}
