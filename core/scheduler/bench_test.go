package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

// published returns st as an FSM publishes it, with the usage index apply
// keeps: what the leader plans on.
func published(b *testing.B, st *fsm.State) *fsm.State {
	data, err := json.Marshal(st)
	if err != nil {
		b.Fatal(err)
	}
	f := fsm.New()
	if err := f.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		b.Fatal(err)
	}
	return f.State()
}

// BenchmarkPlanInstallation: the cost of one placement command on a loaded
// fleet, as the leader pays it for every create (on a published state; a
// state built by hand would be indexed anew by every plan).
func BenchmarkPlanInstallation(b *testing.B) {
	for _, size := range []struct{ hosts, perHost int }{{100, 20}, {1000, 20}, {5000, 20}} {
		st := published(b, fleet(size.hosts, size.perHost))
		for _, backs := range []int{3, 100} {
			inst := &fsm.Installation{Name: "new", Backs: backs, Fronts: 1, PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 512, DiskMB: 100}}
			b.Run(fmt.Sprintf("hosts=%d/instances=%d/backs=%d", size.hosts, len(st.Instances), backs), func(b *testing.B) {
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
}

// halfUsed says every installation used half of what it reserves.
type halfUsed struct{}

func (halfUsed) Share(string) (cpu, mem float64, ok bool) { return 0.5, 0.5, true }

// BenchmarkPlanPackMeasured: one placement under pack with the leader's
// measured demand, which asks for every candidate's load per instance placed.
func BenchmarkPlanPackMeasured(b *testing.B) {
	for _, size := range []struct{ hosts, perHost int }{{100, 20}, {1000, 20}} {
		st := published(b, fleet(size.hosts, size.perHost))
		inst := &fsm.Installation{Name: "new", Backs: 3, Fronts: 1, PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 512, DiskMB: 100},
			Placement: &fsm.Placement{Policy: fsm.PolicyPack}}
		b.Run(fmt.Sprintf("hosts=%d/instances=%d", size.hosts, len(st.Instances)), func(b *testing.B) {
			n := 0
			for b.Loop() {
				_, _, err := PlanInstallation(st, inst, func() string { n++; return fmt.Sprint("x", n) }, Measured(st, halfUsed{})...)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
