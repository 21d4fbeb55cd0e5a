package scheduler

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// TestPlacesByMeasuredAndUnpackedSize: a host that declared more than its
// agent measured gets no more than the measurement, and an image that
// unpacks to more than the installation's declared disk counts at its
// unpacked size.
func TestPlacesByMeasuredAndUnpackedSize(t *testing.T) {
	declared := fsm.Resources{MilliCPU: 1_024_000, MemoryMB: 1 << 24, DiskMB: 1 << 30}
	tests := []struct {
		name     string
		measured *fsm.Resources
		unpacked int64 // bytes the app's image unpacks to
		per      fsm.Resources
		fits     int
	}{
		{"older agent: declared", nil, 0, fsm.Resources{MilliCPU: 1000, MemoryMB: 256, DiskMB: 10}, 5},
		{"measured cpu caps the declaration", &fsm.Resources{MilliCPU: 2000, MemoryMB: 1 << 20, DiskMB: 1 << 20}, 0, fsm.Resources{MilliCPU: 1000, MemoryMB: 256, DiskMB: 10}, 2},
		{"unpacked image counts as disk", &fsm.Resources{MilliCPU: 64000, MemoryMB: 1 << 20, DiskMB: 1000}, 300 << 20, fsm.Resources{MilliCPU: 100, MemoryMB: 64, DiskMB: 10}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := fsm.NewState()
			st.Hosts["b0"] = &fsm.Host{ID: "b0", Name: "b0", Role: fsm.RoleBack, Status: fsm.HostReady, Capacity: declared, Measured: tc.measured}
			st.Apps["web"] = &fsm.App{Name: "web", UncompressedSize: tc.unpacked}
			// One instance per installation per Back: one-instance
			// installations until the host is full.
			p := NewPlanner(st, NewInstanceID)
			placed := 0
			for i := range 5 {
				name := fmt.Sprintf("site%d", i)
				inst := &fsm.Installation{Name: name, App: "web", PerInstance: tc.per}
				st.Installations[name] = inst
				if _, err := p.PlaceBacks(inst, 1); err != nil {
					break
				}
				placed++
			}
			require.Equal(t, tc.fits, placed)
		})
	}
}
