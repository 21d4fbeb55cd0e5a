package scaler

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
	"potluck/core/series"
	"potluck/internal/fakeclock"
)

// memNode is a core node in memory: the real FSM, raft's log replaced by a
// counter (as in core/reconcile's tests).
type memNode struct {
	fsm *fsm.FSM
	now func() time.Time

	mu     sync.Mutex
	index  uint64
	leader bool
}

func (n *memNode) apply(t *testing.T, c *fsm.Command) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.index++
	require.NoError(t, fsmtest.ApplyAt(n.fsm, n.index, n.now().UTC(), c).Err)
}

func (n *memNode) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

func (n *memNode) State() *fsm.State { return n.fsm.State() }

func (n *memNode) Decide(_ context.Context, requestID string, build cluster.Builder) (fsm.Result, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.leader {
		return fsm.Result{}, cluster.ErrNotLeader
	}
	now := n.now().UTC()
	c, err := build(n.fsm.State(), now)
	if err != nil {
		return fsm.Result{Err: err}, nil
	}
	c.RequestID, c.Time = requestID, now
	n.index++
	return fsmtest.ApplyAt(n.fsm, n.index, now, c), nil
}

type fixture struct {
	t      *testing.T
	clock  *fakeclock.Clock
	node   *memNode
	series *series.Store
	s      *Scaler
}

func newFixture(t *testing.T) *fixture {
	clock := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	node := &memNode{fsm: fsm.New(), now: clock.Now, leader: true}
	st := series.New(time.Minute, 0, clock.Now)
	f := &fixture{t: t, clock: clock, node: node, series: st, s: New(Config{Node: node, Series: st, Now: clock.Now})}
	caps := fsm.Resources{MilliCPU: 4000, MemoryMB: 4096, DiskMB: 4096}
	for i := 1; i <= 3; i++ {
		node.apply(t, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: fmt.Sprintf("b%d", i), Name: fmt.Sprintf("b%d", i), Role: fsm.RoleBack,
			PublicKey: fmt.Sprintf("kb%d", i), TokenID: fsm.OperatorTokenID, Status: fsm.HostReady, Capacity: caps}})
	}
	node.apply(t, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: "f1", Name: "f1", Role: fsm.RoleFront, PublicKey: "kf1",
		TokenID: fsm.OperatorTokenID, Status: fsm.HostReady, Capacity: caps}})
	node.apply(t, &fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "web", Image: "web:1", ContainerPort: 80}})
	node.apply(t, &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{
		Name: "site", App: "web", Fronts: 1, Backs: 1, Domain: "site.test", ContainerPort: 80, FrontHosts: []string{"f1"},
		PerInstance: fsm.Resources{MilliCPU: 250, MemoryMB: 64, DiskMB: 64}},
		Instances: []*fsm.Instance{{ID: "i1", Installation: "site", HostID: "b1", Port: 5000}}})
	f.setRunning()
	return f
}

// setRunning reports every pending instance running, as Backs would.
func (f *fixture) setRunning() {
	var ups []fsm.InstanceUpdate
	for _, in := range f.node.State().InstancesOf("site") {
		if in.State == fsm.InstancePending {
			ups = append(ups, fsm.InstanceUpdate{ID: in.ID, State: fsm.InstanceRunning})
		}
	}
	if len(ups) > 0 {
		f.node.apply(f.t, &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Update: ups}})
	}
}

// minute feeds one minute in which every live instance used cpu, then
// moves on to the next minute and ticks.
func (f *fixture) minute(cpu float64) Decision {
	var ms []agentproto.InstanceMetrics
	for _, in := range f.node.State().InstancesOf("site") {
		if in.State == fsm.InstanceRunning {
			ms = append(ms, agentproto.InstanceMetrics{ID: in.ID, Installation: "site", CPU: cpu, Memory: 0.3})
		}
	}
	f.series.AddBack(ms)
	f.series.AddFront([]agentproto.RouteMetrics{{Installation: "site", Requests: uint64(cpu * 1000)}})
	f.clock.Advance(time.Minute)
	f.s.Tick(context.Background())
	r := f.s.Recent("site")
	require.NotEmpty(f.t, r)
	return r[len(r)-1]
}

func (f *fixture) setPolicy(a fsm.Autoscale) {
	f.node.apply(f.t, &fsm.Command{Type: fsm.CmdSetAutoscale, Name: "site", Autoscale: &a})
}

func TestReactiveScalesOutAndDrainsIn(t *testing.T) {
	f := newFixture(t)
	f.s.Tick(context.Background())
	require.Empty(t, f.s.Recent("site"), "autoscaling is off until set")

	f.setPolicy(fsm.Autoscale{Enabled: true, Policy: fsm.AutoscaleReactive, Min: 1, Max: 2, CPUTarget: 0.5, Interval: 2 * time.Minute})
	f.s.Tick(context.Background())
	require.Contains(t, f.s.Recent("site")[0].Reason, "started running 0s ago; its load settles for 1m0s", "a new instance's first step is not its load")
	f.clock.Advance(time.Minute)
	f.s.Tick(context.Background())
	r := f.s.Recent("site")
	require.Len(t, r, 1, "a repeated hold replaces the one before")
	require.Contains(t, r[0].Reason, "no metrics")

	d := f.minute(0.3)
	require.Equal(t, 1, d.To, "30 %% is between the rules: %s", d.Reason)
	d = f.minute(0.9)
	require.True(t, d.Applied, d.Reason)
	require.Equal(t, 2, d.To)
	require.Contains(t, d.Reason, "CPU 90 % > 50 %")
	inst := f.node.State().Installations["site"]
	require.Equal(t, 2, inst.Backs)
	require.Len(t, inst.Autoscale.Events, 1, "the operation is in the replicated record")
	require.Equal(t, d.Reason, inst.Autoscale.Events[0].Reason)

	d = f.minute(0.9)
	require.False(t, d.Applied)
	require.Contains(t, d.Reason, "starting", "no decision while new instances start")
	f.setRunning()
	f.s.Tick(context.Background())
	require.Contains(t, f.s.Recent("site")[len(f.s.Recent("site"))-1].Reason, "settles")
	d = f.minute(0.9)
	require.Equal(t, 2, d.To, "at the maximum: %s", d.Reason)

	d = f.minute(0.02)
	require.True(t, d.Applied, d.Reason)
	require.Equal(t, 1, d.To)
	var draining, running int
	for _, in := range f.node.State().InstancesOf("site") {
		switch in.State {
		case fsm.InstanceDraining:
			draining++
		case fsm.InstanceRunning:
			running++
		}
	}
	require.Equal(t, 1, draining, "scale-in drains instead of removing")
	require.Equal(t, 1, running)
	require.Equal(t, 1, f.node.State().Installations["site"].Backs)
}

func TestMinimumIntervalHoldsAndSurvivesANewLeader(t *testing.T) {
	f := newFixture(t)
	f.setPolicy(fsm.Autoscale{Enabled: true, Policy: fsm.AutoscaleReactive, Min: 1, Max: 3, CPUTarget: 0.5, Interval: 10 * time.Minute})
	require.True(t, f.minute(0.9).Applied)
	f.setRunning()
	// A new leader (a fresh scaler) builds its controller from the record.
	f.s = New(Config{Node: f.node, Series: f.series, Now: f.clock.Now})
	d := f.minute(0.9)
	require.False(t, d.Applied)
	require.Equal(t, "interval", d.Source)
	require.Contains(t, d.Reason, "minimum interval is 10m0s")
	for range 9 {
		d = f.minute(0.9)
	}
	require.True(t, d.Applied, d.Reason)
	require.Equal(t, 3, d.To)
}

func TestBoundsApplyAtOnceAndFollowersDoNothing(t *testing.T) {
	f := newFixture(t)
	f.setPolicy(fsm.Autoscale{Enabled: true, Min: 2, Max: 3, CPUTarget: 0.75, Interval: time.Hour})
	f.s.Tick(context.Background())
	d := f.s.Recent("site")[0]
	require.True(t, d.Applied, d.Reason)
	require.Equal(t, "bounds", d.Source)
	require.Equal(t, 2, f.node.State().Installations["site"].Backs)

	f.node.mu.Lock()
	f.node.leader = false
	f.node.mu.Unlock()
	f.s.Tick(context.Background())
	require.Empty(t, f.s.Recent("site"), "a follower keeps nothing")
}

func TestAnOperationThatDoesNotFitIsRecordedNotApplied(t *testing.T) {
	f := newFixture(t)
	// Three Backs and one instance per Back: a fourth fits nowhere.
	f.setPolicy(fsm.Autoscale{Enabled: true, Policy: fsm.AutoscaleReactive, Min: 3, Max: 4, CPUTarget: 0.5})
	f.s.Tick(context.Background())
	require.Equal(t, 3, f.node.State().Installations["site"].Backs, "bounds raised the count at once")
	f.setRunning()
	f.clock.Advance(time.Minute)
	d := f.minute(0.9)
	require.False(t, d.Applied)
	require.Equal(t, 4, d.To)
	require.Contains(t, d.Reason, "CPU 90 % > 50 %")
	require.Contains(t, d.Reason, "not applied: not enough capacity")
	require.Equal(t, 3, f.node.State().Installations["site"].Backs, "nothing changed")
	require.Len(t, f.node.State().Installations["site"].Autoscale.Events, 1, "only the bounds operation is in the record")
}
