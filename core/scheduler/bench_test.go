package scheduler

import (
	"fmt"
	"testing"

	"potluck/core/fsm"
)

// fleet builds a state with hosts Backs and about perHost instances on each,
// every installation with 4 instances on distinct hosts.
func fleet(hosts, perHost int) *fsm.State {
	st := fsm.NewState()
	for i := range hosts {
		id := fmt.Sprintf("h-%05d", i)
		st.Hosts[id] = &fsm.Host{ID: id, Name: id, Role: fsm.RoleBack, Status: fsm.HostReady,
			Capacity: fsm.Resources{MilliCPU: 64000, MemoryMB: 256 << 10, DiskMB: 1 << 20}}
	}
	st.Hosts["f"] = &fsm.Host{ID: "f", Name: "f", Role: fsm.RoleFront, Status: fsm.HostReady}
	need := fsm.Resources{MilliCPU: 100, MemoryMB: 128, DiskMB: 100}
	n := 0
	for k := range hosts * perHost / 4 {
		name := fmt.Sprintf("inst%06d", k)
		st.Installations[name] = &fsm.Installation{Name: name, Backs: 4, Fronts: 1, PerInstance: need, FrontHosts: []string{"f"}}
		for j := range 4 {
			id := fmt.Sprintf("i-%07d", n)
			h := fmt.Sprintf("h-%05d", (k*4+j)%hosts)
			st.Instances[id] = &fsm.Instance{ID: id, Installation: name, HostID: h, Port: fsm.MinPort + (k*4+j)/hosts, State: fsm.InstanceRunning}
			n++
		}
	}
	return st
}

// BenchmarkPlanInstallation: the cost of one placement command on a loaded
// fleet, as the leader pays it for every create.
func BenchmarkPlanInstallation(b *testing.B) {
	for _, size := range []struct{ hosts, perHost int }{{100, 20}, {1000, 20}, {5000, 20}} {
		st := fleet(size.hosts, size.perHost)
		inst := &fsm.Installation{Name: "new", Backs: 3, Fronts: 1, PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 512, DiskMB: 100}}
		b.Run(fmt.Sprintf("hosts=%d/instances=%d", size.hosts, len(st.Instances)), func(b *testing.B) {
			n := 0
			for b.Loop() {
				_, _, err := PlanInstallation(st, inst, func() string { n++; return fmt.Sprint("x", n) })
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPlanInstallationPackMeasured: the same under pack with measured
// usage, where every candidate Back asks the demand for its forecast.
func BenchmarkPlanInstallationPackMeasured(b *testing.B) {
	for _, size := range []struct{ hosts, perHost int }{{100, 20}, {1000, 20}} {
		st := fleet(size.hosts, size.perHost)
		st.PlacementPolicy = fsm.PolicyPack
		u := usage{}
		for name := range st.Installations {
			u[name] = [2]float64{0.5, 0.5}
		}
		inst := &fsm.Installation{Name: "new", Backs: 3, Fronts: 1, PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 512, DiskMB: 100}}
		b.Run(fmt.Sprintf("hosts=%d/instances=%d", size.hosts, len(st.Instances)), func(b *testing.B) {
			n := 0
			for b.Loop() {
				_, _, err := PlanInstallation(st, inst, func() string { n++; return fmt.Sprint("x", n) }, Measured(st, u)...)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
