package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// maxStatsBytes bounds one stats answer (a few KiB in practice).
const maxStatsBytes = 1 << 20

// Usage is one reading of a container's resource counters.
type Usage struct {
	// Read is when the engine took the reading.
	Read time.Time
	// CPU is the container's cumulative CPU time.
	CPU time.Duration
	// Memory is what the container uses without the page cache the
	// kernel can drop (what `docker stats` shows), MemoryLimit its limit.
	Memory, MemoryLimit uint64
}

// Stats reads a container's counters once (the Docker stats API, one-shot,
// no previous sample: the caller keeps its own and takes the difference).
func (e *Engine) Stats(ctx context.Context, id string) (Usage, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := e.cli.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return Usage{}, fmt.Errorf("docker stats %s: %w", id, err)
	}
	defer res.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(io.LimitReader(res.Body, maxStatsBytes)).Decode(&s); err != nil {
		return Usage{}, fmt.Errorf("docker stats %s: %w", id, err)
	}
	mem := s.MemoryStats.Usage
	// cgroup v2 calls the reclaimable cache inactive_file, v1
	// total_inactive_file; docker stats subtracts it the same way.
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := s.MemoryStats.Stats[k]; ok && v <= mem {
			mem -= v
			break
		}
	}
	return Usage{Read: s.Read, CPU: time.Duration(s.CPUStats.CPUUsage.TotalUsage), Memory: mem, MemoryLimit: s.MemoryStats.Limit}, nil
}
