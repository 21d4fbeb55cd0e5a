package scheduler

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

type world struct {
	t   *testing.T
	fsm *fsm.FSM
	ids int
	now time.Time
}

func (w *world) newID() string {
	w.ids++
	return fmt.Sprintf("i-%05d", w.ids)
}

func (w *world) apply(c *fsm.Command) fsm.Result {
	w.t.Helper()
	w.now = w.now.Add(time.Second)
	c.Time = w.now
	return fsmtest.Apply(w.t, w.fsm, c)
}

// checkInvariants: never two instances on one port of a host, never beyond
// declared capacity, ports in range, one instance per installation per host.
func checkInvariants(t *testing.T, st *fsm.State) {
	t.Helper()
	type hp struct {
		host string
		port int
	}
	seen := map[hp]string{}
	per := map[string]bool{}
	for _, in := range st.SortedInstances() {
		require.GreaterOrEqual(t, in.Port, fsm.MinPort)
		require.LessOrEqual(t, in.Port, fsm.MaxPort)
		k := hp{in.HostID, in.Port}
		require.NotContains(t, seen, k, "port %d used twice on %s", in.Port, in.HostID)
		seen[k] = in.ID
		pk := in.Installation + "/" + in.HostID
		require.False(t, per[pk], "two instances of %s on %s", in.Installation, in.HostID)
		per[pk] = true
	}
	for _, h := range st.SortedHosts() {
		require.True(t, h.Capacity.Fits(st.Used(h.ID)), "host %s over capacity: %+v > %+v", h.Name, st.Used(h.ID), h.Capacity)
	}
}

func TestSchedulerPropertiesRandomized(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			w := &world{t: t, fsm: fsm.New(), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			w.apply(&fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "tok", Hash: "h"}})
			w.apply(&fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "app", Image: "x:1", ContainerPort: 80}})
			nBacks, nFronts := 3+rng.IntN(6), 1+rng.IntN(3)
			addr := netip.MustParseAddr("100.64.1.1")
			var backs, fronts []string
			for i := range nBacks + nFronts {
				role, name := fsm.RoleBack, fmt.Sprintf("back%d", i)
				if i >= nBacks {
					role, name = fsm.RoleFront, fmt.Sprintf("front%d", i)
				}
				id := fmt.Sprintf("h-%02d", i)
				res := w.apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
					ID: id, Name: name, Role: role, PublicKey: fmt.Sprintf("key%d", i), TunnelAddr: addr, TokenID: "tok", Status: fsm.HostReady,
					Capacity: fsm.Resources{MilliCPU: int64(500 + rng.IntN(4000)), MemoryMB: int64(256 + rng.IntN(4096)), DiskMB: int64(100 + rng.IntN(2000))},
				}})
				require.NoError(t, res.Err)
				addr = addr.Next()
				if role == fsm.RoleBack {
					backs = append(backs, id)
				} else {
					fronts = append(fronts, id)
				}
			}
			installs := 0
			for step := range 60 {
				st := w.fsm.State()
				switch op := rng.IntN(10); {
				case op < 5: // create an installation
					inst := &fsm.Installation{
						Name: fmt.Sprintf("inst%d", step), App: "app", Fronts: 1, Backs: 1 + rng.IntN(3), Domain: fmt.Sprintf("d%d.example", step),
						PerInstance:   fsm.Resources{MilliCPU: int64(100 + rng.IntN(1000)), MemoryMB: int64(32 + rng.IntN(1024)), DiskMB: int64(1 + rng.IntN(300))},
						ContainerPort: 80,
					}
					fr, ins, err := PlanInstallation(st, inst, w.newID)
					if err != nil {
						require.Equal(t, fsm.CodeConflict, fsm.CodeOf(err))
						require.Contains(t, err.Error(), "not enough")
						continue
					}
					inst.FrontHosts = fr
					res := w.apply(&fsm.Command{Type: fsm.CmdCreateInstallation, Installation: inst, Instances: ins})
					require.NoError(t, res.Err)
					installs++
				case op < 7 && installs > 0: // scale one
					all := st.SortedInstallations()
					if len(all) == 0 {
						continue
					}
					inst := all[rng.IntN(len(all))]
					plan, err := PlanScale(st, inst.Name, 1, 1+rng.IntN(4), w.newID)
					if err != nil {
						continue
					}
					require.NoError(t, w.apply(&fsm.Command{Type: fsm.CmdPlan, Plan: plan}).Err)
				case op < 9: // a back goes down; repair
					id := backs[rng.IntN(len(backs))]
					if st.Hosts[id].Status != fsm.HostReady {
						continue
					}
					plan := PlanRepair(st, []string{id}, w.newID)
					require.NoError(t, w.apply(&fsm.Command{Type: fsm.CmdPlan, Plan: plan}).Err)
					assertRescheduled(t, w.fsm.State())
				default: // a down back comes back; repair again
					for _, id := range backs {
						if st.Hosts[id].Status == fsm.HostDown {
							res := w.apply(&fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: id, Status: fsm.HostReady}}}})
							require.NoError(t, res.Err)
							break
						}
					}
					if plan := PlanRepair(w.fsm.State(), nil, w.newID); !plan.Empty() {
						require.NoError(t, w.apply(&fsm.Command{Type: fsm.CmdPlan, Plan: plan}).Err)
					}
					assertRescheduled(t, w.fsm.State())
				}
				checkInvariants(t, w.fsm.State())
			}
			_ = fronts
		})
	}
}

// assertRescheduled: every instance on a host that is not ready was moved,
// unless no ready Back could take it (then it is marked lost).
func assertRescheduled(t *testing.T, st *fsm.State) {
	t.Helper()
	for _, in := range st.SortedInstances() {
		h := st.Hosts[in.HostID]
		if h.Status == fsm.HostReady {
			require.NotEqual(t, fsm.InstanceLost, in.State, "instance %s lost on a ready host", in.ID)
			continue
		}
		require.Equal(t, fsm.InstanceLost, in.State, "instance %s left on a down host without being marked lost", in.ID)
		// Capacity really is missing: no ready back without this installation
		// has room.
		need := st.Installations[in.Installation].PerInstance
		for _, b := range st.SortedHosts() {
			if b.Role != fsm.RoleBack || b.Status != fsm.HostReady {
				continue
			}
			hasOne := false
			for _, o := range st.InstancesOn(b.ID) {
				hasOne = hasOne || o.Installation == in.Installation
			}
			if hasOne {
				continue
			}
			free := b.Capacity.Sub(st.Used(b.ID))
			require.False(t, free.Fits(need), "instance %s lost although %s has room", in.ID, b.Name)
		}
	}
}

func TestPlanInstallationSpreadsAndFailsWhole(t *testing.T) {
	st := fsm.NewState()
	for i, cpu := range []int64{1000, 4000, 2000} {
		id := fmt.Sprintf("b%d", i)
		st.Hosts[id] = &fsm.Host{ID: id, Name: id, Role: fsm.RoleBack, Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: cpu, MemoryMB: 4096, DiskMB: 1000}}
	}
	st.Hosts["f"] = &fsm.Host{ID: "f", Name: "f", Role: fsm.RoleFront, Status: fsm.HostReady}
	n := 0
	id := func() string { n++; return fmt.Sprint("i", n) }
	inst := &fsm.Installation{Name: "a", Fronts: 1, Backs: 2, PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 10, DiskMB: 1}}
	fronts, ins, err := PlanInstallation(st, inst, id)
	require.NoError(t, err)
	require.Equal(t, []string{"f"}, fronts)
	require.Equal(t, "b1", ins[0].HostID, "most free first")
	require.Equal(t, "b2", ins[1].HostID)
	require.Equal(t, fsm.MinPort, ins[0].Port)

	inst.Backs = 4
	_, _, err = PlanInstallation(st, inst, id)
	require.Error(t, err)
	require.Contains(t, err.Error(), "3 fit (1 more needed")
	inst.Backs, inst.Fronts = 1, 2
	_, _, err = PlanInstallation(st, inst, id)
	require.ErrorContains(t, err, "not enough fronts")
}

func TestPlanDrainedWaitsForReplacements(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	state := func(replacement fsm.InstanceState) *fsm.State {
		st := fsm.NewState()
		st.Hosts["old"] = &fsm.Host{ID: "old", Role: fsm.RoleBack, Status: fsm.HostDraining, UpdatedAt: t0}
		st.Hosts["new"] = &fsm.Host{ID: "new", Role: fsm.RoleBack, Status: fsm.HostReady}
		st.Installations["web"] = &fsm.Installation{Name: "web", Backs: 1}
		st.Instances["i-old"] = &fsm.Instance{ID: "i-old", Installation: "web", HostID: "old", State: fsm.InstanceRunning}
		st.Instances["i-new"] = &fsm.Instance{ID: "i-new", Installation: "web", HostID: "new", State: replacement}
		return st
	}
	for _, tc := range []struct {
		name        string
		replacement fsm.InstanceState
		after       time.Duration
		leaves      bool
	}{
		{"replacement still starting", fsm.InstancePending, time.Second, false},
		{"replacement failed", fsm.InstanceFailed, time.Second, false},
		{"replacement running", fsm.InstanceRunning, time.Second, true},
		{"drain timed out", fsm.InstancePending, 2 * time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := PlanDrained(state(tc.replacement), t0.Add(tc.after), 2*time.Minute)
			if !tc.leaves {
				require.True(t, plan.Empty(), "%+v", plan)
				return
			}
			require.Equal(t, []fsm.HostStatusChange{{HostID: "old", Status: fsm.HostDecommissioned}}, plan.Hosts)
			require.Equal(t, []string{"i-old"}, plan.Remove)
		})
	}
}
