package front

import (
	"context"
	"sync"
	"time"

	"potluck/agentproto"
	"potluck/lb"
	"potluck/lb/metrics"
)

// usage turns the proxy's running totals into per-interval reports of each
// installation's requests, 5xx answers and latency histogram: what the
// core's autoscaler reads as load.
type usage struct {
	proxy *lb.Proxy
	now   func() time.Time
	// boundsMS are the latency buckets' bounds in every report (shared:
	// reports are only read).
	boundsMS []float64

	mu   sync.Mutex
	last map[string]lb.RouteCounters
	at   time.Time
}

func newUsage(p *lb.Proxy) *usage {
	u := &usage{proxy: p, now: time.Now, last: map[string]lb.RouteCounters{}}
	for _, b := range metrics.BoundsSeconds() {
		u.boundsMS = append(u.boundsMS, b*1000)
	}
	u.at = u.now()
	for _, c := range p.Counters() {
		u.last[c.Name] = c
	}
	return u
}

// report returns what changed since the previous call. Routes are named
// after their installation; the placeholder of an installation with no
// instance ready counts too (those requests are load that waited).
func (u *usage) report(context.Context) *agentproto.MetricsReport {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := u.now()
	m := &agentproto.MetricsReport{IntervalMS: now.Sub(u.at).Milliseconds(), Routes: []agentproto.RouteMetrics{}}
	next := map[string]lb.RouteCounters{}
	for _, c := range u.proxy.Counters() {
		next[c.Name] = c
		prev := u.last[c.Name]
		r := agentproto.RouteMetrics{Installation: c.Name, Requests: sub(c.Requests, prev.Requests), Errors: sub(c.Errors, prev.Errors),
			LatencyBoundsMS: u.boundsMS, LatencyCounts: make([]uint64, len(c.LatencyCounts)),
			LatencySumMS: float64(max(0, c.LatencySum-prev.LatencySum)) / float64(time.Millisecond)}
		for i, v := range c.LatencyCounts {
			var p uint64
			if i < len(prev.LatencyCounts) {
				p = prev.LatencyCounts[i]
			}
			r.LatencyCounts[i] = sub(v, p)
		}
		r.Errors = min(r.Errors, r.Requests)
		m.Routes = append(m.Routes, r)
	}
	u.last, u.at = next, now
	return m
}

// sub is a-b for counters, 0 if a counter went back (a route re-created).
func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
