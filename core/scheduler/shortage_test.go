package scheduler

import (
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// TestShortageSpeaksTheCLIsUnits: a refusal says cpus and MiB as the CLI
// takes them (--cpus 0.5, --memory 256) and the tables show them, not
// milli-cpus and "MB".
func TestShortageSpeaksTheCLIsUnits(t *testing.T) {
	st := smallState([]hostSpec{{id: "a1", cpu: 4000, mem: 8192}}, nil)
	inst := &fsm.Installation{Name: "web", Fronts: 1, Backs: 1, PerInstance: fsm.Resources{MilliCPU: 4500, MemoryMB: 1024, DiskMB: 1}}
	_, _, err := PlanInstallation(st, inst, seqIDs())
	require.Equal(t, fsm.CodeConflict, fsm.CodeOf(err))
	for _, want := range []string{"1 back(s) with 4.5 cpu, 1024 MiB memory, 1 MiB disk free needed", "too small: a1 (free 4 cpu, 8192 MiB memory"} {
		require.ErrorContains(t, err, want)
	}
	require.NotContains(t, err.Error(), "MB memory")
	require.NotContains(t, err.Error(), "m cpu")
}
