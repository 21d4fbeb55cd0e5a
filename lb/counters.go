package lb

import "time"

// RouteCounters are one route's running totals, for an agent that reports
// deltas (the Front's metrics for the autoscaler). They survive reloads
// like the route's metrics do.
type RouteCounters struct {
	Name     string
	Requests uint64
	// Errors are responses with a 5xx status, the backend's or the proxy's.
	Errors uint64
	// LatencyCounts is the time-to-header histogram (metrics.BoundsSeconds
	// buckets, not cumulative) and LatencySum the sum of its observations.
	LatencyCounts []uint64
	LatencySum    time.Duration
}

// Counters returns every route's totals.
func (p *Proxy) Counters() []RouteCounters {
	t := p.table.Load()
	out := make([]RouteCounters, 0, len(t.routes))
	for _, rt := range t.routes {
		c := RouteCounters{Name: rt.name, Requests: rt.m.requests.Load(), Errors: rt.m.status[5].Load()}
		c.LatencyCounts, c.LatencySum = rt.m.latency.Snapshot()
		out = append(out, c)
	}
	return out
}
