package scheduler

import (
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// usage is measured shares by installation.
type usage map[string][2]float64

func (u usage) Share(name string) (cpu, mem float64, ok bool) {
	s, ok := u[name]
	return s[0], s[1], ok
}

func TestMeasuredDemand(t *testing.T) {
	st := smallState([]hostSpec{{id: "a", cpu: 4000, mem: 4096}}, map[string]fsm.Resources{"a": {MilliCPU: 2000, MemoryMB: 2048}})
	st.Installations["other"] = &fsm.Installation{Name: "other", Backs: 1, PerInstance: fsm.Resources{MilliCPU: 1000, MemoryMB: 1024}}
	st.Instances["i-o"] = &fsm.Instance{ID: "i-o", Installation: "other", HostID: "a", Port: fsm.MinPort + 1, State: fsm.InstanceRunning}
	h := st.Hosts["a"]
	tests := []struct {
		name  string
		usage usage
		want  fsm.Resources
	}{
		{"nothing measured: the reservations", usage{}, fsm.Resources{MilliCPU: 3000, MemoryMB: 3072}},
		{"both measured", usage{"used-a": {0.5, 0.25}, "other": {0.1, 1}}, fsm.Resources{MilliCPU: 1100, MemoryMB: 1536}},
		{"one measured", usage{"other": {0, 0.5}}, fsm.Resources{MilliCPU: 2000, MemoryMB: 2560}},
		{"above the limit counts as the limit", usage{"used-a": {3, 3}, "other": {0, 0}}, fsm.Resources{MilliCPU: 2000, MemoryMB: 2048}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, NewMeasuredDemand(st, tc.usage).Load(h, fsm.Resources{}))
		})
	}
	require.Nil(t, Measured(st, nil), "no metrics: plans rank by reservations")
}

// TestPackAvoidsABackMeasuredBusy: under pack, of two Backs with equal
// reservations the one whose instances were measured busy is passed over
// once the newcomer would push it past the headroom.
func TestPackAvoidsABackMeasuredBusy(t *testing.T) {
	st := smallState([]hostSpec{{id: "a", cpu: 4000, mem: 8192}, {id: "b", cpu: 4000, mem: 8192}},
		map[string]fsm.Resources{"a": {MilliCPU: 2000, MemoryMB: 1024}, "b": {MilliCPU: 2000, MemoryMB: 1024}})
	st.PlacementPolicy = fsm.PolicyPack
	inst := &fsm.Installation{Name: "new", Backs: 1, PerInstance: fsm.Resources{MilliCPU: 1800, MemoryMB: 512}}
	st.Installations["new"] = inst
	place := func(u Usage) string {
		ins, err := NewPlanner(st, seqIDs(), Measured(st, u)...).PlaceBacks(inst, 1)
		require.NoError(t, err)
		return ins[0].HostID
	}
	require.Equal(t, "a", place(nil), "equal reservations: the lower id")
	require.Equal(t, "b", place(usage{"used-a": {1, 0.5}, "used-b": {0.2, 0.5}}), "a's instance uses all it reserves")
	require.Equal(t, "a", place(usage{"used-a": {0.2, 0.5}, "used-b": {1, 0.5}}))
}
