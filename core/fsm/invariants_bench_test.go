package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyPlanOnLoadedFleet: one small plan (a state update) applied
// on a fleet with 20 instances per host. Apply copies the state and re-checks
// every invariant, so this is the per-command cost the leader and every
// follower pay.
func BenchmarkApplyPlanOnLoadedFleet(b *testing.B) {
	for _, hosts := range []int{100, 1000, 5000} {
		st := NewState()
		for i := range hosts {
			id := fmt.Sprintf("h-%05d", i)
			st.Hosts[id] = &Host{ID: id, Name: id, Role: RoleBack, Status: HostReady,
				Capacity: Resources{MilliCPU: 64000, MemoryMB: 1 << 18, DiskMB: 1 << 20}}
		}
		for k := range hosts * 5 {
			name := fmt.Sprintf("inst%06d", k)
			per := Resources{MilliCPU: 100, MemoryMB: 128, DiskMB: 100}
			// As createInstallation leaves it: release 1 live and remembered.
			st.Installations[name] = &Installation{Name: name, Backs: 4, PerInstance: per, Release: 1,
				Releases: []*Release{{Version: 1, PerInstance: per, Status: ReleaseLive}}}
			for j := range 4 {
				n := k*4 + j
				id := fmt.Sprintf("i-%07d", n)
				st.Instances[id] = &Instance{ID: id, Installation: name, HostID: fmt.Sprintf("h-%05d", n%hosts), Port: MinPort + n/hosts, State: InstancePending}
			}
		}
		data, err := json.Marshal(&Command{Type: CmdPlan, Plan: &Plan{Update: []InstanceUpdate{{ID: "i-0000000", State: InstanceRunning}}}})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("hosts=%d/instances=%d", hosts, len(st.Instances)), func(b *testing.B) {
			f := &FSM{state: st, changed: make(chan struct{})}
			idx := uint64(0)
			for b.Loop() {
				idx++
				if res := f.Apply(&raft.Log{Index: idx, Data: data}).(Result); res.Err != nil {
					b.Fatal(res.Err)
				}
			}
		})
	}
}

// BenchmarkRestoreFleet: restoring a snapshot of 5,000 hosts and 100,000
// instances, what a node joining (or restarting behind a compacted log)
// pays before it serves.
func BenchmarkRestoreFleet(b *testing.B) {
	st := NewState()
	for i := range 5000 {
		id := fmt.Sprintf("h-%05d", i)
		st.Hosts[id] = &Host{ID: id, Name: id, Role: RoleBack, Status: HostReady, PublicKey: "k" + id,
			Capacity: Resources{MilliCPU: 64000, MemoryMB: 1 << 18, DiskMB: 1 << 20}}
	}
	per := Resources{MilliCPU: 100, MemoryMB: 128, DiskMB: 100}
	for k := range 400 {
		name := fmt.Sprintf("inst%06d", k)
		st.Installations[name] = &Installation{Name: name, Backs: 250, PerInstance: per, Release: 1,
			Releases: []*Release{{Version: 1, PerInstance: per, Status: ReleaseLive}}}
		for j := range 250 {
			n := k*250 + j
			id := fmt.Sprintf("i-%012x", n)
			st.Instances[id] = &Instance{ID: id, Installation: name, HostID: fmt.Sprintf("h-%05d", n%5000), Port: MinPort + n/5000, State: InstanceRunning}
		}
	}
	var buf bytes.Buffer
	if err := writeSnapshot(&buf, st); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(buf.Len()))
	for b.Loop() {
		f := New()
		if err := f.Restore(io.NopCloser(bytes.NewReader(buf.Bytes()))); err != nil {
			b.Fatal(err)
		}
	}
}
