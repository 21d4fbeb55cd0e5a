package agentproto

import (
	"fmt"
	"math"
)

// PathMetrics is where an agent posts a MetricsReport on the agent API:
// what it measured since its previous report. Followers hand it to the
// leader, which keeps the installations' time series (the autoscaler's
// input); it never reaches the raft log.
const PathMetrics = "/v1/agent/metrics"

// Limits of one report.
const (
	MaxMetricsRoutes    = 2048
	MaxMetricsInstances = 1024
	MaxLatencyBuckets   = 64
)

// MetricsReport is one agent's measurements over the interval since its
// previous report (IntervalMS long). A Front fills Routes, a Back fills
// Instances.
type MetricsReport struct {
	IntervalMS int64             `json:"interval_ms"`
	Routes     []RouteMetrics    `json:"routes,omitempty"`
	Instances  []InstanceMetrics `json:"instances,omitempty"`
}

// RouteMetrics is what one Front saw of one installation in the interval:
// requests answered, those answered 5xx (the app's or the proxy's), and
// their time to the response header as a histogram (counts per bucket;
// the last count is above the last bound).
type RouteMetrics struct {
	Installation    string    `json:"installation"`
	Requests        uint64    `json:"requests"`
	Errors          uint64    `json:"errors"`
	LatencyBoundsMS []float64 `json:"latency_bounds_ms"`
	LatencyCounts   []uint64  `json:"latency_counts"`
	LatencySumMS    float64   `json:"latency_sum_ms"`
}

// InstanceMetrics is one container's use in the interval, as its Back read
// it from the Docker Engine: CPU as a share of the instance's CPU limit
// (0..1, may exceed 1 briefly) and memory as a share of its memory limit.
type InstanceMetrics struct {
	ID           string  `json:"id"`
	Installation string  `json:"installation"`
	CPU          float64 `json:"cpu"`
	Memory       float64 `json:"memory"`
	MemoryBytes  uint64  `json:"memory_bytes"`
}

// Check validates a report as the core receives it.
func (m MetricsReport) Check() error {
	if len(m.Routes) > MaxMetricsRoutes || len(m.Instances) > MaxMetricsInstances {
		return fmt.Errorf("at most %d routes and %d instances per metrics report", MaxMetricsRoutes, MaxMetricsInstances)
	}
	if m.IntervalMS < 0 || m.IntervalMS > 3600_000 {
		return fmt.Errorf("metrics interval %d ms: must be within 0..1h", m.IntervalMS)
	}
	for _, r := range m.Routes {
		if r.Installation == "" {
			return fmt.Errorf("route metrics without an installation")
		}
		if len(r.LatencyCounts) != 0 && len(r.LatencyCounts) != len(r.LatencyBoundsMS)+1 || len(r.LatencyBoundsMS) > MaxLatencyBuckets {
			return fmt.Errorf("route %s: latency histogram needs one count more than bounds, at most %d bounds", r.Installation, MaxLatencyBuckets)
		}
		for i, b := range r.LatencyBoundsMS {
			if !finite(b) || (i > 0 && b <= r.LatencyBoundsMS[i-1]) {
				return fmt.Errorf("route %s: latency bounds must increase", r.Installation)
			}
		}
		if r.Errors > r.Requests || !finite(r.LatencySumMS) {
			return fmt.Errorf("route %s: errors above requests or a bad latency sum", r.Installation)
		}
	}
	for _, in := range m.Instances {
		if in.ID == "" || in.Installation == "" {
			return fmt.Errorf("instance metrics without an id or installation")
		}
		if !finite(in.CPU) || !finite(in.Memory) || in.CPU < 0 || in.Memory < 0 || in.CPU > 1000 || in.Memory > 1000 {
			return fmt.Errorf("instance %s: cpu and memory must be shares of the limits", in.ID)
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
