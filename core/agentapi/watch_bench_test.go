package agentapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// loadedFleet is an FSM restored from a state with hosts hosts (one Front
// per hundred, the rest Backs) and 20 instances per host in installations
// of 100 (99 on 100 hosts), each fronted by one Front: the shape bench/fleet creates.
func loadedFleet(tb testing.TB, hosts int) *fsm.FSM {
	tb.Helper()
	st := fsm.NewState()
	st.Index = 1
	fronts := max(1, hosts/100)
	var backs []string
	for i := range hosts {
		id := fmt.Sprintf("h-%05d", i)
		role := fsm.RoleBack
		if i < fronts {
			role = fsm.RoleFront
		} else {
			backs = append(backs, id)
		}
		st.Hosts[id] = &fsm.Host{ID: id, Name: id, Role: role, Status: fsm.HostReady, PublicKey: "key-" + id,
			TunnelAddr: netip.AddrFrom4([4]byte{100, 64, byte(1 + i/250), byte(1 + i%250)}),
			Capacity:   fsm.Resources{MilliCPU: 64000, MemoryMB: 1 << 18, DiskMB: 1 << 20}}
	}
	st.Apps["web"] = &fsm.App{Name: "web", Image: "web:1", ContainerPort: 80}
	per := fsm.Resources{MilliCPU: 100, MemoryMB: 128, DiskMB: 100}
	n, size := 0, min(100, len(backs)) // at most one instance per Back (spread)
	for k := range hosts * 20 / size {
		name := fmt.Sprintf("inst%05d", k)
		st.Installations[name] = &fsm.Installation{Name: name, App: "web", Fronts: 1, Backs: size, Domain: name + ".example",
			ContainerPort: 80, PerInstance: per, FrontHosts: []string{fmt.Sprintf("h-%05d", k%fronts)}}
		for range size {
			id := fmt.Sprintf("i-%07d", n)
			st.Instances[id] = &fsm.Instance{ID: id, Installation: name, HostID: backs[n%len(backs)], Port: fsm.MinPort + n/len(backs), State: fsm.InstancePending}
			n++
		}
	}
	require.NoError(tb, st.CheckInvariants())
	data, err := json.Marshal(st)
	require.NoError(tb, err)
	return fsmtest.Restore(tb, data)
}

// BenchmarkStateChange is what the agent API's follower and the queries it
// wakes cost for one new state on a loaded fleet where every host holds a
// blocking query: the follower's step (index, diff, wake-ups) and, for each
// woken host, the work of its query (fingerprint, desired state, JSON).
// Cases: one instance reported running (a heartbeat's change), and one
// installation of three instances placed.
func BenchmarkStateChange(b *testing.B) {
	for _, hosts := range []int{100, 1000, 5000} {
		f := loadedFleet(b, hosts)
		fronts := max(1, hosts/100)
		backs := hosts - fronts
		for _, kind := range []string{"report", "place"} {
			b.Run(fmt.Sprintf("%s/hosts=%d/instances=%d", kind, hosts, hosts*20), func(b *testing.B) {
				// The benchmark steps the follower itself: its own
				// goroutine must not follow the same states meanwhile.
				h := New(Config{State: held{f}, Context: b.Context()})
				h.watch.ensure()
				ids := make([]string, 0, len(f.State().Hosts))
				for id := range f.State().Hosts {
					ids = append(ids, id)
				}
				waits := map[string]<-chan struct{}{}
				for _, id := range ids {
					_, waits[id] = h.watch.subscribe(id)
				}
				i := 0
				for b.Loop() {
					b.StopTimer()
					i++
					var c *fsm.Command
					if kind == "report" {
						state := fsm.InstanceRunning
						if i%2 == 0 {
							state = fsm.InstancePending
						}
						c = &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Update: []fsm.InstanceUpdate{{ID: fmt.Sprintf("i-%07d", (i/2)%(hosts*20)), State: state}}}}
					} else {
						name := fmt.Sprintf("new%06d", i)
						c = &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{Name: name, App: "web", Fronts: 1, Backs: 3,
							Domain: name + ".example", ContainerPort: 80, PerInstance: fsm.Resources{MilliCPU: 1, MemoryMB: 1, DiskMB: 1},
							FrontHosts: []string{fmt.Sprintf("h-%05d", i%fronts)}}}
						for j := range 3 {
							c.Instances = append(c.Instances, &fsm.Instance{ID: fmt.Sprintf("n-%06d-%d", i, j), Installation: name,
								HostID: fmt.Sprintf("h-%05d", fronts+(3*i+j)%backs), Port: fsm.MaxPort - i})
						}
					}
					if res := fsmtest.Apply(b, f, c); res.Err != nil {
						b.Fatal(res.Err)
					}
					next := f.State()
					b.StartTimer()
					h.watch.step(next)
					b.StopTimer()
					var woken []string
					for _, id := range ids {
						select {
						case <-waits[id]:
							woken = append(woken, id)
						default:
						}
					}
					b.StartTimer()
					for _, id := range woken {
						ix, ch := h.watch.subscribe(id)
						waits[id] = ch
						h.answer(ix, ix.st.Hosts[id])
					}
				}
			})
		}
	}
}

// answer is a woken query's work in a benchmark: compare, then encode.
func (h *Handler) answer(ix *index, host *fsm.Host) {
	_ = h.watch.fingerprint(ix, host.ID)
	h.writeDesired(httptest.NewRecorder(), ix, host)
}

// held is an FSM whose followers are never told of a new state: the
// benchmark hands them each one.
type held struct{ *fsm.FSM }

func (h held) Wait(ctx context.Context, _ uint64) *fsm.State {
	<-ctx.Done()
	return h.State()
}
