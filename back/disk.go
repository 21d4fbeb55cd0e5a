package back

import (
	"context"
	"regexp"

	"potluck/agent"
	"potluck/agentproto"
	"potluck/back/engine"
)

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// measureEngine measures what a Back has: the CPUs and memory of its Docker
// Engine's machine (where containers run) and the disk free under Docker's
// data root plus what this host's own images already take there (they are
// Potluck's to reuse, so a Back restarted with a full cache is not refused),
// with the engine machine's architecture and the storage type under the
// data root.
func measureEngine(eng *engine.Engine, dataDir string) agent.MeasureFunc {
	return func(ctx context.Context, hostID string) (agentproto.Capacity, error) {
		facts, err := eng.Facts(ctx)
		if err != nil {
			return agentproto.Capacity{}, err
		}
		storage := agent.StorageType(facts.RootDir)
		free, err := agent.DiskFree(facts.RootDir)
		if err != nil {
			// An engine on another machine: its disk is not ours to see.
			if free, err = agent.DiskFree(dataDir); err != nil {
				return agentproto.Capacity{}, err
			}
			storage = ""
		}
		if hostID != "" {
			sizes, err := eng.ImageSizes(ctx, blobRepo+hostKey(hostID)+"/*")
			if err != nil {
				return agentproto.Capacity{}, err
			}
			for _, n := range sizes {
				free += n
			}
		}
		return agentproto.Capacity{
			CPUs: float64(facts.CPUs), MemoryMB: facts.MemoryBytes >> 20, DiskMB: free >> 20,
			Arch: agent.GOArch(facts.Arch), Storage: storage,
		}, nil
	}
}
