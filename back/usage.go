package back

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"potluck/agentproto"
	"potluck/back/engine"
)

// usage reads each running instance's CPU and memory from the Docker
// Engine and reports them as shares of the instance's limits: the core's
// autoscaler compares them with its CPU target.
type usage struct {
	engine *engine.Engine
	log    *slog.Logger

	mu      sync.Mutex
	last    map[string]engine.Usage // by container id: the previous reading
	failing bool                    // the engine could not be asked (logged once)
}

// instanceUsage turns two readings of one container into its use over the
// time between them: CPU as a share of cpus cores, memory as a share of
// its limit (the engine's, else memoryMB).
func instanceUsage(prev, cur engine.Usage, cpus float64, memoryMB int64) (cpu, mem float64, ok bool) {
	wall := cur.Read.Sub(prev.Read)
	if prev.Read.IsZero() || wall <= 0 || cur.CPU < prev.CPU || cpus <= 0 {
		return 0, 0, false
	}
	cpu = float64(cur.CPU-prev.CPU) / float64(wall) / cpus
	limit := float64(cur.MemoryLimit)
	if memoryMB > 0 && (limit == 0 || float64(memoryMB<<20) < limit) {
		limit = float64(memoryMB << 20)
	}
	if limit > 0 {
		mem = float64(cur.Memory) / limit
	}
	return cpu, mem, true
}

// report reads every running instance of desired (containers found by
// their labels) and returns their use since the previous call; an instance
// read for the first time is reported from the next call on.
func (u *usage) report(ctx context.Context, hostID string, desired *agentproto.DesiredState) *agentproto.MetricsReport {
	if desired == nil {
		return nil
	}
	want := map[string]agentproto.Instance{}
	for _, in := range desired.Instances {
		want[in.ID] = in
	}
	cs, err := u.engine.List(ctx, hostID)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		if !u.failing {
			u.log.Warn("cannot list containers for metrics; no metrics until the engine answers", "err", err)
		}
		u.failing = true
		return nil
	}
	if u.failing {
		u.log.Info("containers listed again; metrics resume")
		u.failing = false
	}
	m := &agentproto.MetricsReport{Instances: []agentproto.InstanceMetrics{}}
	next := map[string]engine.Usage{}
	var interval time.Duration
	for _, c := range cs {
		in, ok := want[c.Instance]
		if !ok || !c.Running() {
			continue
		}
		cur, err := u.engine.Stats(ctx, c.ID)
		if err != nil {
			continue // gone meanwhile; the next reading starts afresh
		}
		next[c.ID] = cur
		cpu, mem, ok := instanceUsage(u.last[c.ID], cur, float64(in.MilliCPU)/1000, in.MemoryMB)
		if !ok {
			continue
		}
		interval = max(interval, cur.Read.Sub(u.last[c.ID].Read))
		m.Instances = append(m.Instances, agentproto.InstanceMetrics{ID: in.ID, Installation: in.Installation, CPU: min(cpu, 100), Memory: min(mem, 100), MemoryBytes: cur.Memory})
	}
	u.last = next
	m.IntervalMS = interval.Milliseconds()
	return m
}
