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
// declared capacity, ports in range, no more instances of an installation
// per host than its placement allows, requirements met, spread constraints
// honoured.
func checkInvariants(t *testing.T, st *fsm.State) {
	t.Helper()
	type hp struct {
		host string
		port int
	}
	seen := map[hp]string{}
	per := map[string]int{}
	spread := map[string]int{} // installation/feature/value -> instances
	for _, in := range st.SortedInstances() {
		require.GreaterOrEqual(t, in.Port, fsm.MinPort)
		require.LessOrEqual(t, in.Port, fsm.MaxPort)
		k := hp{in.HostID, in.Port}
		require.NotContains(t, seen, k, "port %d used twice on %s", in.Port, in.HostID)
		seen[k] = in.ID
		inst, h := st.Installations[in.Installation], st.Hosts[in.HostID]
		pk := in.Installation + "/" + in.HostID
		per[pk]++
		require.LessOrEqual(t, per[pk], inst.PerHostLimit(), "too many instances of %s on %s", in.Installation, in.HostID)
		if inst.Placement == nil {
			continue
		}
		for key, want := range inst.Placement.Requires {
			require.Equal(t, want, Feature(h, key), "instance %s of %s on %s, which lacks %s=%s", in.ID, inst.Name, h.Name, key, want)
		}
		for _, c := range inst.Placement.Spread {
			sk := inst.Name + "/" + c.By + "/" + Feature(h, c.By)
			spread[sk]++
			require.LessOrEqual(t, spread[sk], c.Max, "spread constraint %s broken", sk)
		}
	}
	for _, h := range st.SortedHosts() {
		require.True(t, h.Capacity.Fits(st.Used(h.ID)), "host %s over capacity: %+v > %+v", h.Name, st.Used(h.ID), h.Capacity)
	}
}

// randomPlacement draws requirements and constraints over the features
// randomHost hands out.
func randomPlacement(rng *rand.Rand) *fsm.Placement {
	pl := &fsm.Placement{}
	if rng.IntN(10) < 3 {
		pl.Requires = map[string]string{"arch": []string{"amd64", "arm64"}[rng.IntN(2)]}
	}
	if rng.IntN(10) < 2 {
		if pl.Requires == nil {
			pl.Requires = map[string]string{}
		}
		pl.Requires["storage"] = "ssd"
	}
	if rng.IntN(10) < 3 {
		pl.Spread = []fsm.SpreadConstraint{{By: []string{"lender", "region"}[rng.IntN(2)], Max: 1 + rng.IntN(2)}}
	}
	if rng.IntN(10) < 3 {
		pl.MaxPerHost = 2 + rng.IntN(2)
	}
	if rng.IntN(10) < 2 {
		pl.Policy = []string{PolicySpread, PolicyPack}[rng.IntN(2)]
	}
	return pl
}

// hotForecast forecasts random hosts as busier than reserved.
type hotForecast map[string]int64

func (d hotForecast) Load(h *fsm.Host, reserved fsm.Resources) fsm.Resources {
	reserved.MilliCPU += d[h.ID]
	return reserved
}

func TestSchedulerPropertiesRandomized(t *testing.T) {
	for _, policy := range []string{PolicySpread, PolicyPack, "pack+forecast"} {
		shared := 0
		for seed := uint64(1); seed <= 20; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", policy, seed), func(t *testing.T) {
				shared += propertiesRandomized(t, policy, seed)
			})
		}
		require.Positive(t, shared, "%s: no run put two instances of one installation on a Back; the test misses that case", policy)
	}
}

// propertiesRandomized runs one random scenario and returns how many times an
// installation had several instances on one Back.
func propertiesRandomized(t *testing.T, policy string, seed uint64) (shared int) {
	rng := rand.New(rand.NewPCG(seed, 42))
	opts := []Option{WithPolicy(policy)}
	if policy == "pack+forecast" {
		hot := hotForecast{}
		for i := range 8 {
			hot[fmt.Sprintf("h-%02d", i)] = int64(rng.IntN(2000))
		}
		opts = []Option{WithPolicy(PolicyPack), WithDemand(hot)}
	}
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
			Arch:     []string{"amd64", "arm64"}[rng.IntN(2)], Storage: []string{"ssd", "hdd"}[rng.IntN(2)],
			Lender: fmt.Sprintf("lender%d", rng.IntN(3)), Region: fmt.Sprintf("r%d", rng.IntN(2)),
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
				ContainerPort: 80, Placement: randomPlacement(rng),
			}
			fr, ins, err := PlanInstallation(st, inst, w.newID, opts...)
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
			plan, err := PlanScale(st, inst.Name, 1, 1+rng.IntN(4), w.newID, opts...)
			if err != nil {
				continue
			}
			require.NoError(t, w.apply(&fsm.Command{Type: fsm.CmdPlan, Plan: plan}).Err)
		case op < 9: // a back goes down; repair
			id := backs[rng.IntN(len(backs))]
			if st.Hosts[id].Status != fsm.HostReady {
				continue
			}
			plan := PlanRepair(st, []string{id}, w.newID, opts...)
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
			if plan := PlanRepair(w.fsm.State(), nil, w.newID, opts...); !plan.Empty() {
				require.NoError(t, w.apply(&fsm.Command{Type: fsm.CmdPlan, Plan: plan}).Err)
			}
			assertRescheduled(t, w.fsm.State())
		}
		checkInvariants(t, w.fsm.State())
		shared += sharedBacks(w.fsm.State())
	}
	_ = fronts
	return shared
}

func sharedBacks(st *fsm.State) int {
	per, n := map[string]int{}, 0
	for _, in := range st.Instances {
		if per[in.Installation+"/"+in.HostID]++; per[in.Installation+"/"+in.HostID] == 2 {
			n++
		}
	}
	return n
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
		// Capacity really is missing: no ready back that meets the
		// installation's requirements and limits has room.
		inst := st.Installations[in.Installation]
		for _, b := range st.SortedHosts() {
			if b.Role != fsm.RoleBack || b.Status != fsm.HostReady || !canTake(st, inst, in, b) {
				continue
			}
			free := b.Capacity.Sub(st.Used(b.ID))
			require.False(t, free.Fits(inst.PerInstance), "instance %s lost although %s has room", in.ID, b.Name)
		}
	}
}

// canTake: b meets inst's requirements, is below its per-host limit and
// keeps its spread constraints if lost (which is being replaced) moves there.
func canTake(st *fsm.State, inst *fsm.Installation, lost *fsm.Instance, b *fsm.Host) bool {
	onB := 0
	var others []*fsm.Host
	for _, o := range st.InstancesOf(inst.Name) {
		if o.ID == lost.ID {
			continue
		}
		if o.HostID == b.ID {
			onB++
		}
		others = append(others, st.Hosts[o.HostID])
	}
	if onB >= inst.PerHostLimit() {
		return false
	}
	if inst.Placement == nil {
		return true
	}
	for k, v := range inst.Placement.Requires {
		if Feature(b, k) != v {
			return false
		}
	}
	for _, c := range inst.Placement.Spread {
		n := 0
		for _, h := range others {
			if Feature(h, c.By) == Feature(b, c.By) {
				n++
			}
		}
		if n >= c.Max {
			return false
		}
	}
	return true
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
