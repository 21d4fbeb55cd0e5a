package lb

import (
	"strings"
	"sync/atomic"
	"time"

	"potluck/lb/metrics"
)

// routeMetrics are one route's counters; they survive reloads.
type routeMetrics struct {
	requests metrics.Counter
	status   [6]metrics.Counter // by class: [1]=1xx ... [5]=5xx, [0]=other
	noLive   metrics.Counter    // 502 because no backend was live
	errors   metrics.Counter    // 502/504 made by the proxy
	upgrades metrics.Counter
	bytesIn  metrics.Counter
	bytesOut metrics.Counter
	latency  metrics.Histogram

	// outage is set while every backend is out (logged once), and
	// outageMark is noLive when it began.
	outage     atomic.Bool
	outageMark atomic.Uint64
}

func lowerAll(hosts []string) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	}
	return out
}

// table is an immutable routing table; the proxy swaps whole tables.
type table struct {
	byHost map[string]*routeState
	def    *routeState
	routes []*routeState
}

// routeState is one Route as served: its backends, its round-robin position
// and its counters.
type routeState struct {
	name     string
	hosts    []string
	backends []*backendState
	// schedule is one period of NGINX's smooth weighted round robin, as
	// backend indexes; with equal weights it is 0,1,2,...
	schedule []uint16
	next     atomic.Uint64
	single   bool
	m        *routeMetrics
}

// smoothWRR computes one period of NGINX's smooth weighted round robin.
func smoothWRR(weights []int) []uint16 {
	total := 0
	for _, w := range weights {
		total += w
	}
	cur := make([]int, len(weights))
	out := make([]uint16, 0, total)
	for range total {
		best := -1
		for i, w := range weights {
			cur[i] += w
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out = append(out, uint16(best))
	}
	return out
}

// tried is the per-request set of backends already attempted.
type tried struct {
	small uint64
	big   []bool
	n     int // how many were added
}

func (t *tried) has(i int) bool {
	if i < 64 {
		return t.small&(1<<uint(i)) != 0
	}
	return i-64 < len(t.big) && t.big[i-64]
}

func (t *tried) add(i int) {
	t.n++
	if i < 64 {
		t.small |= 1 << uint(i)
		return
	}
	for len(t.big) <= i-64 {
		t.big = append(t.big, false)
	}
	t.big[i-64] = true
}

// pick returns the next backend for a request, skipping tried ones and those
// health excludes, or -1 when none is left ("no live upstreams").
func (rt *routeState) pick(t *tried, now time.Duration) (idx int, probe bool) {
	if rt.single {
		if t.has(0) {
			return -1, false
		}
		return 0, false // a single backend is never marked down
	}
	n := uint64(len(rt.schedule))
	start := rt.next.Add(1) - 1
	for k := uint64(0); k < n; k++ {
		i := int(rt.schedule[(start+k)%n])
		if t.has(i) {
			continue
		}
		if ok, probe := rt.backends[i].health.Acquire(now); ok {
			if k > 0 {
				// Keep the rotation moving past the skipped slots.
				rt.next.Add(k)
			}
			return i, probe
		}
	}
	return -1, false
}
