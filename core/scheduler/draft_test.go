package scheduler_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/scheduler"
)

// draftWorld drives an FSM the way the leader does: decisions are built on
// a draft (fsm.Draft) that holds every command proposed and not committed
// yet, and the FSM commits them later in group commits of random sizes.
// After every commit the draft's view of instances must be the FSM's, and
// no published state may have changed since it was published: both forks
// share the published maps and entities, so a change made in place by
// either would leak into the other (the spurious "port N on host used by
// X and Y" refusal of issue 16 is what such a leak looks like).
type draftWorld struct {
	t         *testing.T
	rng       *rand.Rand
	f         *fsm.FSM
	index     uint64
	now       time.Time
	seq       int
	published []publishedState
}

type publishedState struct {
	st     *fsm.State
	enc    []byte
	placed string // with the usage index, which JSON leaves out
}

func newDraftWorld(t *testing.T, seed uint64) *draftWorld {
	w := &draftWorld{t: t, rng: rand.New(rand.NewPCG(seed, 7)), f: fsm.New(), now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	var setup []*fsm.Command
	for i := range 10 {
		setup = append(setup, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: fmt.Sprintf("b%02d", i), Name: fmt.Sprintf("back%d", i), Role: fsm.RoleBack, PublicKey: fmt.Sprintf("kb%d", i),
			TokenID: fsm.OperatorTokenID, Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 2000, MemoryMB: 4096, DiskMB: 10000},
		}})
	}
	for i := range 3 {
		setup = append(setup, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: fmt.Sprintf("f%02d", i), Name: fmt.Sprintf("front%d", i), Role: fsm.RoleFront, PublicKey: fmt.Sprintf("kf%d", i),
			TokenID: fsm.OperatorTokenID, Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1024, DiskMB: 1000},
		}})
	}
	setup = append(setup, &fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "web", Image: "web:1", ContainerPort: 80}})
	for _, res := range w.commit(setup) {
		require.NoError(t, res.Err)
	}
	return w
}

// commit applies cmds as raft would, in group commits of random sizes.
func (w *draftWorld) commit(cmds []*fsm.Command) []fsm.Result {
	var out []fsm.Result
	for len(cmds) > 0 {
		n := 1 + w.rng.IntN(len(cmds))
		logs := make([]*raft.Log, n)
		for i, c := range cmds[:n] {
			if c.Time.IsZero() {
				c.Time = w.now
			}
			data, err := json.Marshal(c)
			require.NoError(w.t, err)
			w.index++
			logs[i] = &raft.Log{Index: w.index, Term: 1, Type: raft.LogCommand, Data: data}
		}
		for _, r := range w.f.ApplyBatch(logs) {
			out = append(out, r.(fsm.Result))
		}
		st := w.f.State()
		enc, err := json.Marshal(st)
		require.NoError(w.t, err)
		w.published = append(w.published, publishedState{st, enc, placements(st)})
		cmds = cmds[n:]
	}
	return out
}

// decide builds one random command on st (the draft's state), or nil.
func (w *draftWorld) decide(st *fsm.State) *fsm.Command {
	w.seq++
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range st.Installations {
			if !yield(n) {
				return
			}
		}
	})
	pick := func() *fsm.Installation {
		if len(names) == 0 {
			return nil
		}
		return st.Installations[names[w.rng.IntN(len(names))]]
	}
	var backs []*fsm.Host
	for _, h := range st.SortedHosts() {
		if h.Role == fsm.RoleBack {
			backs = append(backs, h)
		}
	}
	switch w.rng.IntN(11) {
	case 0, 1, 2: // create
		inst := &fsm.Installation{Name: fmt.Sprintf("s%d", w.seq), App: "web", Fronts: 1, Backs: 1 + w.rng.IntN(4),
			Domain: fmt.Sprintf("s%d.example", w.seq), ContainerPort: 80, PerInstance: fsm.Resources{MilliCPU: 200, MemoryMB: 64, DiskMB: 1}}
		fronts, instances, err := scheduler.PlanInstallation(st, inst, scheduler.NewInstanceID)
		if err != nil {
			return nil
		}
		inst.FrontHosts = fronts
		return &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: inst, Instances: instances}
	case 3: // delete or retire
		if inst := pick(); inst != nil {
			if w.rng.IntN(2) == 0 {
				return &fsm.Command{Type: fsm.CmdDeleteInstallation, Name: inst.Name}
			}
			return &fsm.Command{Type: fsm.CmdRetireInstallation, Name: inst.Name}
		}
	case 4: // heartbeats: instance states
		plan := &fsm.Plan{}
		for _, in := range st.SortedInstances() {
			if w.rng.IntN(3) == 0 && in.State != fsm.InstanceLost && in.State != fsm.InstanceDraining {
				plan.Update = append(plan.Update, fsm.InstanceUpdate{ID: in.ID, State: []fsm.InstanceState{fsm.InstanceRunning, fsm.InstanceFailed}[w.rng.IntN(2)]})
			}
		}
		if !plan.Empty() {
			return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}
		}
	case 5: // a Back misses its heartbeats: repair
		h := backs[w.rng.IntN(len(backs))]
		if h.Status == fsm.HostReady {
			if plan := scheduler.PlanRepair(st, []string{h.ID}, scheduler.NewInstanceID); !plan.Empty() {
				return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}
			}
		}
	case 6: // a down Back comes back, then repair
		for _, h := range backs {
			if h.Status == fsm.HostDown {
				return &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: h.ID, Status: fsm.HostReady}}}}
			}
		}
		if plan := scheduler.PlanRepair(st, nil, scheduler.NewInstanceID); !plan.Empty() {
			return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}
		}
	case 7: // scale
		if inst := pick(); inst != nil && !inst.Deleting && inst.Deploying() == nil {
			plan, err := scheduler.PlanScale(st, inst.Name, 1, 1+w.rng.IntN(4), scheduler.NewInstanceID)
			if err == nil && !plan.Empty() {
				return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}
			}
		}
	case 8: // a release: push a version, deploy it beside the live one, promote it
		inst := pick()
		if inst == nil || inst.Deleting {
			return nil
		}
		if d := inst.Deploying(); d != nil {
			return &fsm.Command{Type: fsm.CmdPromoteRelease, Name: inst.Name, Release: &fsm.Release{Version: d.Version}}
		}
		if w.rng.IntN(2) == 0 {
			return &fsm.Command{Type: fsm.CmdPushAppVersion, App: &fsm.App{Name: "web", Image: fmt.Sprintf("web:%d", w.seq), ContainerPort: 80}}
		}
		live, _ := inst.ReleaseByVersion(0)
		rel := *live
		rel.Version, rel.AppVersion = inst.LatestRelease()+1, st.Apps["web"].CurrentVersion()
		rel.PerInstance.MilliCPU = 100 + 100*int64(w.rng.IntN(3))
		p := scheduler.NewPlanner(st, scheduler.NewInstanceID)
		p.Beside(inst.Name)
		instances, err := p.PlaceBacksNeeding(inst, st.ReleaseNeed(&rel), inst.Backs)
		if err != nil {
			return nil
		}
		for _, in := range instances {
			in.Release = rel.Version
		}
		return &fsm.Command{Type: fsm.CmdDeployRelease, Name: inst.Name, Release: &rel, Instances: instances}
	case 10: // autoscaling: turned on, or an operation (a scale plan and its event)
		inst := pick()
		if inst == nil || inst.Deleting || inst.Deploying() != nil {
			return nil
		}
		if inst.Autoscale == nil || !inst.Autoscale.Enabled {
			return &fsm.Command{Type: fsm.CmdSetAutoscale, Name: inst.Name, Autoscale: &fsm.Autoscale{Enabled: true, Min: 1, Max: 4, CPUTarget: 0.6, Interval: time.Minute}}
		}
		to := 1 + w.rng.IntN(4)
		plan, err := scheduler.PlanScale(st, inst.Name, inst.Fronts, to, scheduler.NewInstanceID)
		if err != nil || plan.Empty() {
			return nil
		}
		return &fsm.Command{Type: fsm.CmdAutoscale, Name: inst.Name, Plan: plan,
			AutoscaleEvent: &fsm.AutoscaleEvent{At: w.now, From: inst.Backs, To: to, Source: "test", Reason: "random"}}
	case 9: // drained instances and hosts leave
		if plan := scheduler.PlanDrained(st, w.now.Add(time.Hour), time.Minute); !plan.Empty() {
			return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}
		}
		if inst := pick(); inst != nil && inst.Deleting {
			return &fsm.Command{Type: fsm.CmdDeleteInstallation, Name: inst.Name}
		}
	}
	return nil
}

// placements is what the scheduler's decisions rest on: every instance's
// host, port, state and release, and every host's status.
func placements(st *fsm.State) string {
	var b []byte
	for _, in := range st.SortedInstances() {
		b = fmt.Appendf(b, "%s %s:%d %s r%d %s\n", in.ID, in.HostID, in.Port, in.State, in.Release, in.Installation)
	}
	for _, h := range st.SortedHosts() {
		b = fmt.Appendf(b, "%s %s\n", h.ID, h.Status)
	}
	u := st.Usage()
	for _, h := range st.SortedHosts() {
		hu := u.Host(h.ID)
		b = fmt.Appendf(b, "%s reserves %+v in %d:", h.ID, hu.Reserved, hu.Instances)
		for _, in := range u.On(h.ID) {
			b = fmt.Appendf(b, " %s:%d", in.ID, in.Port)
		}
		b = append(b, '\n')
	}
	return string(b)
}

// requireIndexIsAWalk checks the usage index apply keeps against a walk of
// the state (a clone has no index).
func requireIndexIsAWalk(t *testing.T, st *fsm.State, msg string) {
	t.Helper()
	index, walk := st.Usage(), st.Clone().Usage()
	for _, h := range st.SortedHosts() {
		require.Equal(t, walk.Host(h.ID), index.Host(h.ID), "%s: host %s", msg, h.ID)
		require.Equal(t, walk.Fronting(h.ID), index.Fronting(h.ID), "%s: installations fronted by %s", msg, h.ID)
		require.Equal(t, walk.On(h.ID), index.On(h.ID), "%s: instances on %s", msg, h.ID)
	}
}

func TestDraftMatchesWhatCommits(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := newDraftWorld(t, seed)
			for round := range 40 {
				w.now = w.now.Add(time.Second)
				d := w.f.NewDraft()
				var cmds []*fsm.Command
				var planned []bool
				for range 1 + w.rng.IntN(6) {
					c := w.decide(d.State())
					if c == nil {
						continue
					}
					c.Time, c.RequestID = w.now, fmt.Sprintf("r%d-%d", round, len(cmds))
					cmds = append(cmds, c)
					planned = append(planned, d.Apply(c))
					if d.Broken() {
						break
					}
				}
				results := w.commit(cmds)
				for i, res := range results {
					require.Equal(t, planned[i], res.Err == nil, "round %d command %d (%s): draft planned %v, FSM: %v", round, i, cmds[i].Type, planned[i], res.Err)
				}
				st := w.f.State()
				require.NoError(t, st.CheckInvariants(), "round %d", round)
				requireIndexIsAWalk(t, st, fmt.Sprintf("round %d, committed", round))
				if !d.Broken() {
					requireIndexIsAWalk(t, d.State(), fmt.Sprintf("round %d, draft", round))
				}
				if !d.Broken() {
					require.Equal(t, placements(d.State()), placements(st), "round %d: the draft and the FSM disagree", round)
				}
				for i, p := range w.published {
					enc, err := json.Marshal(p.st)
					require.NoError(t, err)
					if string(enc) != string(p.enc) { // JSONEq only to show the difference: it is slow
						require.JSONEq(t, string(p.enc), string(enc), "round %d: published state %d changed after it was published", round, i)
					}
					require.Equal(t, p.placed, placements(p.st), "round %d: published state %d's index changed after it was published", round, i)
				}
				w.published = w.published[len(w.published)-1:]
			}
		})
	}
}
