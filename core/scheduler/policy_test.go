package scheduler

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

type hostSpec struct {
	id       string
	cpu, mem int64
	arch     string
	lender   string
}

// smallState builds ready Backs (and one Front) plus instances of a filler
// installation "used" on the listed hosts.
func smallState(hosts []hostSpec, used map[string]fsm.Resources) *fsm.State {
	st := fsm.NewState()
	for _, h := range hosts {
		st.Hosts[h.id] = &fsm.Host{ID: h.id, Name: h.id, Role: fsm.RoleBack, Status: fsm.HostReady,
			Capacity: fsm.Resources{MilliCPU: h.cpu, MemoryMB: h.mem, DiskMB: 10_000}, Arch: h.arch, Lender: h.lender}
	}
	st.Hosts["f"] = &fsm.Host{ID: "f", Name: "f", Role: fsm.RoleFront, Status: fsm.HostReady}
	for id, r := range used {
		name := "used-" + id
		st.Installations[name] = &fsm.Installation{Name: name, Backs: 1, PerInstance: r}
		st.Instances["i-"+id] = &fsm.Instance{ID: "i-" + id, Installation: name, HostID: id, Port: fsm.MinPort, State: fsm.InstanceRunning}
	}
	return st
}

func seqIDs() IDFunc {
	n := 0
	return func() string { n++; return fmt.Sprintf("n-%03d", n) }
}

func hostsOf(ins []*fsm.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.HostID)
	}
	return out
}

// hotDemand forecasts some hosts as busier than their reservations.
type hotDemand map[string]fsm.Resources

func (d hotDemand) Load(h *fsm.Host, reserved fsm.Resources) fsm.Resources {
	if l, ok := d[h.ID]; ok {
		return l
	}
	return reserved
}

func TestPackPolicyRanksByScore(t *testing.T) {
	need := fsm.Resources{MilliCPU: 1000, MemoryMB: 1024, DiskMB: 100}
	four := func(id string) hostSpec { return hostSpec{id: id, cpu: 4000, mem: 8192} }
	for _, tc := range []struct {
		name   string
		hosts  []hostSpec
		used   map[string]fsm.Resources
		demand Demand
		backs  int
		want   []string
	}{
		{
			name:  "a used Back that fits beats an empty one",
			hosts: []hostSpec{four("a"), four("b")},
			used:  map[string]fsm.Resources{"b": {MilliCPU: 1000, MemoryMB: 1024}},
			backs: 1, want: []string{"b"},
		},
		{
			name:  "the tightest fit on the dominant resource wins",
			hosts: []hostSpec{four("a"), four("b"), four("c")},
			used: map[string]fsm.Resources{
				"a": {MilliCPU: 1000, MemoryMB: 1024},
				"b": {MilliCPU: 2500, MemoryMB: 1024}, // cpu is b's dominant share
				"c": {MilliCPU: 500, MemoryMB: 4096},
			},
			backs: 1, want: []string{"b"},
		},
		{
			name:  "among empty Backs the one the instance fills most, so large ones stay whole",
			hosts: []hostSpec{{id: "big", cpu: 16000, mem: 65536}, {id: "small", cpu: 2000, mem: 2048}, four("mid")},
			backs: 1, want: []string{"small"},
		},
		{
			name:  "a full Back is skipped for the next used one",
			hosts: []hostSpec{four("a"), four("b"), four("c")},
			used: map[string]fsm.Resources{
				"a": {MilliCPU: 3500, MemoryMB: 1024},
				"b": {MilliCPU: 1000, MemoryMB: 1024},
			},
			backs: 1, want: []string{"b"},
		},
		{
			name:   "forecast load beyond the headroom steers away from a Back",
			hosts:  []hostSpec{four("a"), four("b")},
			used:   map[string]fsm.Resources{"a": {MilliCPU: 2000, MemoryMB: 1024}, "b": {MilliCPU: 1000, MemoryMB: 1024}},
			demand: hotDemand{"a": {MilliCPU: 3900, MemoryMB: 1024}},
			backs:  1, want: []string{"b"},
		},
		{
			name:  "one per Back by default, the second goes to the next best",
			hosts: []hostSpec{four("a"), four("b"), four("c")},
			used:  map[string]fsm.Resources{"b": {MilliCPU: 1000, MemoryMB: 1024}},
			backs: 2, want: []string{"b", "a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := smallState(tc.hosts, tc.used)
			inst := &fsm.Installation{Name: "web", Fronts: 1, Backs: tc.backs, PerInstance: need, Placement: &fsm.Placement{Policy: PolicyPack}}
			var opts []Option
			if tc.demand != nil {
				opts = append(opts, WithDemand(tc.demand))
			}
			_, ins, err := PlanInstallation(st, inst, seqIDs(), opts...)
			require.NoError(t, err)
			require.Equal(t, tc.want, hostsOf(ins))
		})
	}
}

func TestPolicyChoice(t *testing.T) {
	hosts := []hostSpec{{id: "a", cpu: 4000, mem: 8192}, {id: "b", cpu: 8000, mem: 8192}}
	used := map[string]fsm.Resources{"a": {MilliCPU: 1000, MemoryMB: 1024}}
	need := fsm.Resources{MilliCPU: 1000, MemoryMB: 1024, DiskMB: 1}
	for _, tc := range []struct {
		name            string
		cluster, option string
		own             string
		want            string
	}{
		{name: "default is spread: most free", want: "b"},
		{name: "cluster says pack", cluster: PolicyPack, want: "a"},
		{name: "the plan's option overrides the cluster", cluster: PolicyPack, option: PolicySpread, want: "b"},
		{name: "the installation's own policy wins", cluster: PolicySpread, option: PolicySpread, own: PolicyPack, want: "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := smallState(hosts, used)
			st.PlacementPolicy = tc.cluster
			inst := &fsm.Installation{Name: "web", Fronts: 1, Backs: 1, PerInstance: need}
			if tc.own != "" {
				inst.Placement = &fsm.Placement{Policy: tc.own}
			}
			var opts []Option
			if tc.option != "" {
				opts = append(opts, WithPolicy(tc.option))
			}
			_, ins, err := PlanInstallation(st, inst, seqIDs(), opts...)
			require.NoError(t, err)
			require.Equal(t, []string{tc.want}, hostsOf(ins))
		})
	}
}

func TestRequirementsAndConstraints(t *testing.T) {
	hosts := []hostSpec{
		{id: "a1", cpu: 4000, mem: 8192, arch: "amd64", lender: "ann"},
		{id: "a2", cpu: 4000, mem: 8192, arch: "amd64", lender: "ann"},
		{id: "b1", cpu: 4000, mem: 8192, arch: "arm64", lender: "bob"},
	}
	need := fsm.Resources{MilliCPU: 1000, MemoryMB: 1024, DiskMB: 1}
	for _, policy := range []string{PolicySpread, PolicyPack} {
		for _, tc := range []struct {
			name      string
			backs     int
			placement fsm.Placement
			want      []string // sorted hosts, or nil when refused
			err       string
		}{
			{name: "arch required", backs: 1, placement: fsm.Placement{Requires: map[string]string{"arch": "arm64"}}, want: []string{"b1"}},
			{name: "requirement nobody meets", backs: 1, placement: fsm.Placement{Requires: map[string]string{"storage": "ssd"}}, err: "lacking storage=ssd: a1, a2, b1"},
			{name: "label required", backs: 1, placement: fsm.Placement{Requires: map[string]string{"gpu": "yes"}}, err: "lacking gpu=yes"},
			{name: "one per lender", backs: 2, placement: fsm.Placement{Spread: []fsm.SpreadConstraint{{By: "lender", Max: 1}}}, want: []string{"a1", "b1"}},
			{name: "one per lender, three wanted", backs: 3, placement: fsm.Placement{Spread: []fsm.SpreadConstraint{{By: "lender", Max: 1}}}, err: "spread limit reached"},
			{name: "several per Back when allowed", backs: 4, placement: fsm.Placement{Requires: map[string]string{"arch": "amd64"}, MaxPerHost: 2}, want: []string{"a1", "a1", "a2", "a2"}},
			{name: "one per Back by default", backs: 3, placement: fsm.Placement{Requires: map[string]string{"arch": "amd64"}}, err: "already running it: a1, a2"},
		} {
			t.Run(policy+"/"+tc.name, func(t *testing.T) {
				st := smallState(hosts, nil)
				pl := tc.placement
				pl.Policy = policy
				inst := &fsm.Installation{Name: "web", Fronts: 1, Backs: tc.backs, PerInstance: need, Placement: &pl}
				_, ins, err := PlanInstallation(st, inst, seqIDs())
				if tc.err != "" {
					require.ErrorContains(t, err, tc.err)
					require.Equal(t, fsm.CodeConflict, fsm.CodeOf(err))
					return
				}
				require.NoError(t, err)
				got := hostsOf(ins)
				sortStrings(got)
				require.Equal(t, tc.want, got)
				ports := map[string]bool{}
				for _, in := range ins {
					k := fmt.Sprint(in.HostID, in.Port)
					require.False(t, ports[k], "port reused: %s", k)
					ports[k] = true
				}
			})
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestValidatePlacement(t *testing.T) {
	for _, tc := range []struct {
		name string
		pl   *fsm.Placement
		err  string
	}{
		{name: "nil is fine", pl: nil},
		{name: "full", pl: &fsm.Placement{Policy: PolicyPack, Requires: map[string]string{"arch": "amd64"}, Spread: []fsm.SpreadConstraint{{By: "region", Max: 2}}, MaxPerHost: 3}},
		{name: "unknown policy", pl: &fsm.Placement{Policy: "random"}, err: `unknown placement policy "random"`},
		{name: "empty requirement value", pl: &fsm.Placement{Requires: map[string]string{"arch": ""}}, err: `requirement "arch"=""`},
		{name: "spread without max", pl: &fsm.Placement{Spread: []fsm.SpreadConstraint{{By: "lender"}}}, err: "max of at least 1"},
		{name: "negative max per host", pl: &fsm.Placement{MaxPerHost: -1}, err: "max_per_host -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidatePlacement(tc.pl)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
			require.Equal(t, fsm.CodeInvalid, fsm.CodeOf(err))
			_, _, err = PlanInstallation(smallState(nil, nil), &fsm.Installation{Name: "x", Backs: 1, Placement: tc.pl}, seqIDs())
			require.ErrorContains(t, err, tc.err, "planning refuses it too")
		})
	}
}

// A draining host's instance does not count against its installation's
// spread limit: its replacement may go to the same lender.
func TestDecommissionReleasesSpreadSlot(t *testing.T) {
	st := smallState([]hostSpec{
		{id: "a1", cpu: 4000, mem: 8192, lender: "ann"},
		{id: "a2", cpu: 4000, mem: 8192, lender: "ann"},
		{id: "b1", cpu: 4000, mem: 8192, lender: "bob"},
	}, nil)
	st.Installations["web"] = &fsm.Installation{Name: "web", Backs: 2, PerInstance: fsm.Resources{MilliCPU: 3000, MemoryMB: 1024},
		Placement: &fsm.Placement{Spread: []fsm.SpreadConstraint{{By: "lender", Max: 1}}}}
	st.Instances["w1"] = &fsm.Instance{ID: "w1", Installation: "web", HostID: "a1", Port: fsm.MinPort, State: fsm.InstanceRunning}
	st.Instances["w2"] = &fsm.Instance{ID: "w2", Installation: "web", HostID: "b1", Port: fsm.MinPort, State: fsm.InstanceRunning}
	plan, err := PlanDecommission(st, []string{"a1"}, seqIDs())
	require.NoError(t, err)
	require.Equal(t, []string{"a2"}, hostsOf(plan.Add))
}

func TestScoreTerms(t *testing.T) {
	h := &fsm.Host{Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 4000, DiskMB: 4000}}
	need := fsm.Resources{MilliCPU: 1000, MemoryMB: 500}
	half := fsm.Resources{MilliCPU: 2000, MemoryMB: 1000}
	measuredHalf := &fsm.Host{Capacity: h.Capacity, Measured: &fsm.Resources{MilliCPU: 2000, MemoryMB: 4000, DiskMB: 4000}}
	for _, tc := range []struct {
		name string
		c    Candidate
		want float64
	}{
		{"empty host: waste plus the empty penalty", Candidate{Host: h, Free: h.Capacity}, 0.75 + EmptyHostPenalty},
		{"half used: the waste only", Candidate{Host: h, Free: h.Capacity.Sub(half), Load: half, Instances: 1}, 0.25},
		{"forecast at capacity: full hot penalty", Candidate{Host: h, Free: h.Capacity.Sub(half), Load: fsm.Resources{MilliCPU: 3000}, Instances: 1}, 0.25 + HotPenalty},
		// Declared 4000 but measured 2000: shares are of the 2000 placement
		// may use, not of the declaration.
		{"measured below declared", Candidate{Host: measuredHalf, Free: measuredHalf.Schedulable()}, 0.5 + EmptyHostPenalty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.InDelta(t, tc.want, Score(tc.c, need, DefaultHeadroom), 1e-9)
		})
	}
}

// Scaling in under pack removes the instance whose Back it would leave
// empty; under spread it goes by id as before.
func TestScaleInUnderPackFreesBacks(t *testing.T) {
	for _, tc := range []struct {
		policy string
		remove []string
	}{
		{PolicySpread, []string{"w1"}},
		{PolicyPack, []string{"w2"}},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			st := smallState([]hostSpec{{id: "a", cpu: 4000, mem: 8192}, {id: "b", cpu: 4000, mem: 8192}},
				map[string]fsm.Resources{"a": {MilliCPU: 100, MemoryMB: 100}})
			st.Installations["web"] = &fsm.Installation{Name: "web", Backs: 2, Fronts: 1, FrontHosts: []string{"f"},
				PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 512}, Placement: &fsm.Placement{Policy: tc.policy}}
			st.Instances["w1"] = &fsm.Instance{ID: "w1", Installation: "web", HostID: "a", Port: fsm.MinPort + 1, State: fsm.InstanceRunning}
			st.Instances["w2"] = &fsm.Instance{ID: "w2", Installation: "web", HostID: "b", Port: fsm.MinPort, State: fsm.InstanceRunning}
			plan, err := PlanScale(st, "web", 1, 1, seqIDs())
			require.NoError(t, err)
			require.Equal(t, tc.remove, plan.Remove)
		})
	}
}

// Decommissioning a host in the middle of a rollout moves each instance as
// it is: a deploying release's instance is replaced by one of that release,
// with that release's resources, and a draining one (on its way out) gets no
// replacement — as PlanRepair does for a host that went down.
func TestDecommissionMovesInstancesWithTheirRelease(t *testing.T) {
	st := smallState([]hostSpec{
		{id: "a1", cpu: 4000, mem: 8192},
		{id: "b1", cpu: 4000, mem: 8192},
	}, nil)
	v1 := fsm.Resources{MilliCPU: 500, MemoryMB: 256}
	v2 := fsm.Resources{MilliCPU: 1500, MemoryMB: 512}
	st.Installations["web"] = &fsm.Installation{Name: "web", Backs: 1, PerInstance: v1, Release: 1, Releases: []*fsm.Release{
		{Version: 1, PerInstance: v1, Status: fsm.ReleaseLive},
		{Version: 2, PerInstance: v2, Status: fsm.ReleaseDeploying},
	}}
	st.Instances["old"] = &fsm.Instance{ID: "old", Installation: "web", HostID: "a1", Port: fsm.MinPort, State: fsm.InstanceDraining, Release: 1}
	st.Instances["new"] = &fsm.Instance{ID: "new", Installation: "web", HostID: "a1", Port: fsm.MinPort + 1, State: fsm.InstancePending, Release: 2}
	plan, err := PlanDecommission(st, []string{"a1"}, seqIDs())
	require.NoError(t, err)
	require.Len(t, plan.Add, 1, "one replacement: the draining instance is not moved")
	require.Equal(t, 2, plan.Add[0].Release, "the deploying release's instance is replaced by one of that release")
	require.Equal(t, "b1", plan.Add[0].HostID)
}
