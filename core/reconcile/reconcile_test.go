package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/scheduler"
	"potluck/internal/fakeclock"
)

const (
	ttl   = 30 * time.Second
	drain = 2 * time.Minute
)

type fixture struct {
	t     *testing.T
	node  *memNode
	clock *fakeclock.Clock
	rec   *Reconciler
	ctx   context.Context
}

func newFixture(t *testing.T, prober Prober) *fixture {
	clk := newClock()
	node := newMemNode(clk.Now)
	node.must(t, &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "t", Hash: "h"}})
	node.must(t, &fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "web", Image: "web:1", ContainerPort: 8080}})
	rec := New(Config{Node: node, TTL: ttl, DrainTimeout: drain, Prober: prober, Logger: slog.New(slog.DiscardHandler), Now: clk.Now})
	return &fixture{t: t, node: node, clock: clk, rec: rec, ctx: context.Background()}
}

// host registers a host named id (its id too) in status st.
func (f *fixture) host(id string, role fsm.Role, st fsm.HostStatus) {
	f.t.Helper()
	f.node.must(f.t, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
		ID: id, Name: id, Role: role, PublicKey: "key-" + id, TokenID: "t", Status: st,
		Capacity: fsm.Resources{MilliCPU: 2000, MemoryMB: 2048, DiskMB: 10000},
	}})
}

// install creates installation name fronted by front with one instance on
// each of backs, each instance running.
func (f *fixture) install(name, front string, backs ...string) {
	f.t.Helper()
	var instances []*fsm.Instance
	for i, b := range backs {
		instances = append(instances, &fsm.Instance{ID: fmt.Sprintf("%s-%d", name, i), Installation: name, HostID: b, Port: fsm.MinPort + i, State: fsm.InstanceRunning})
	}
	f.node.must(f.t, &fsm.Command{Type: fsm.CmdCreateInstallation,
		Installation: &fsm.Installation{Name: name, App: "web", Fronts: 1, Backs: len(backs), Domain: name + ".example", ContainerPort: 8080,
			PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 256, DiskMB: 10}, FrontHosts: []string{front}},
		Instances: instances})
}

func (f *fixture) tick() {
	f.t.Helper()
	require.NoError(f.t, f.rec.Tick(f.ctx))
}

// beat sends heartbeats from hosts, reporting nothing.
func (f *fixture) beat(hosts ...string) {
	f.t.Helper()
	for _, h := range hosts {
		require.NoError(f.t, f.rec.Heartbeat(f.ctx, h, nil), h)
	}
}

func (f *fixture) status(host string) fsm.HostStatus { return f.node.State().Hosts[host].Status }

// placement lists "instance@host:state" of an installation, sorted.
func (f *fixture) placement(installation string) []string {
	var out []string
	st := f.node.State()
	for _, in := range st.InstancesOf(installation) {
		out = append(out, fmt.Sprintf("%s:%s", in.HostID, in.State))
	}
	sort.Strings(out)
	return out
}

func TestMissedHeartbeatsMarkHostDownAndMoveItsInstances(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.host("b2", fsm.RoleBack, fsm.HostReady)
	f.install("shop", "f1", "b1")

	f.tick() // first round as leader: every host gets a full TTL from now
	f.clock.Advance(ttl)
	f.beat("f1", "b2")
	f.tick()
	require.Equal(t, fsm.HostReady, f.status("b1"), "exactly TTL without a heartbeat is not down yet")
	require.Equal(t, []string{"b1:running"}, f.placement("shop"))

	f.clock.Advance(time.Second)
	f.beat("f1", "b2")
	f.tick()
	require.Equal(t, fsm.HostDown, f.status("b1"))
	require.Equal(t, fsm.HostReady, f.status("b2"))
	require.Equal(t, []string{"b2:pending"}, f.placement("shop"), "the instance moved to the other Back")

	before := f.node.State().Index
	f.tick()
	require.Equal(t, before, f.node.State().Index, "a round with nothing to do commits nothing")
}

func TestDownFrontIsReplaced(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("f2", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.install("shop", "f1", "b1")

	f.tick()
	f.clock.Advance(ttl + time.Second)
	f.beat("f2", "b1")
	f.tick()
	require.Equal(t, fsm.HostDown, f.status("f1"))
	require.Equal(t, []string{"f2"}, f.node.State().Installations["shop"].FrontHosts)
}

func TestDownHostComesBack(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.install("shop", "f1", "b1")

	f.tick()
	f.clock.Advance(ttl + time.Second)
	f.beat("f1")
	f.tick()
	require.Equal(t, fsm.HostDown, f.status("b1"))
	require.Equal(t, []string{"b1:lost"}, f.placement("shop"), "no other Back: the instance waits, lost")

	// Its heartbeat brings it back; the next round restarts what it held.
	require.NoError(t, f.rec.Heartbeat(f.ctx, "b1", []agentproto.InstanceReport{{ID: "shop-0", State: agentproto.InstanceRunning}}))
	require.Equal(t, fsm.HostReady, f.status("b1"))
	require.Equal(t, []string{"b1:lost"}, f.placement("shop"), "a report does not revive a lost instance")
	f.tick()
	require.Equal(t, []string{"b1:pending"}, f.placement("shop"))
	require.NoError(t, f.rec.Heartbeat(f.ctx, "b1", []agentproto.InstanceReport{{ID: "shop-0", State: agentproto.InstanceRunning}}))
	require.Equal(t, []string{"b1:running"}, f.placement("shop"))
}

func TestHeartbeat(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.host("b2", fsm.RoleBack, fsm.HostReady)
	f.host("gone", fsm.RoleBack, fsm.HostDecommissioned)
	f.install("shop", "f1", "b1", "b2")

	report := func(id string, state agentproto.InstanceState, msg string) []agentproto.InstanceReport {
		return []agentproto.InstanceReport{{ID: id, State: state, Message: msg}}
	}
	tests := []struct {
		name    string
		host    string
		reports []agentproto.InstanceReport
		code    fsm.Code // "" = accepted
		commits bool
		want    []string
	}{
		{"nothing changed", "b1", report("shop-0", fsm.InstanceRunning, ""), "", false, []string{"b1:running", "b2:running"}},
		{"an instance failed", "b1", report("shop-0", fsm.InstanceFailed, "exit 1"), "", true, []string{"b1:failed", "b2:running"}},
		{"another host's instance is ignored", "b1", report("shop-1", fsm.InstanceFailed, ""), "", false, []string{"b1:failed", "b2:running"}},
		{"an unknown instance is ignored", "b2", report("nope", fsm.InstanceFailed, ""), "", false, []string{"b1:failed", "b2:running"}},
		{"unknown host", "h-nope", nil, fsm.CodeNotFound, false, nil},
		{"decommissioned host", "gone", nil, fsm.CodeConflict, false, nil},
		{"a state only the core decides", "b1", report("shop-0", fsm.InstanceLost, ""), fsm.CodeInvalid, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, decides := f.node.State().Index, f.node.decideCalls()
			err := f.rec.Heartbeat(f.ctx, tc.host, tc.reports)
			if tc.code != "" {
				require.Equal(t, tc.code, fsm.CodeOf(err), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.commits, f.node.State().Index != before)
			// A heartbeat that changes nothing does not queue behind the
			// writes Decide serialises.
			require.Equal(t, tc.commits, f.node.decideCalls() != decides, "Decide called")
			require.Equal(t, tc.want, f.placement("shop"))
		})
	}

	f.node.setLeader(false)
	require.ErrorIs(t, f.rec.Heartbeat(f.ctx, "b1", nil), cluster.ErrNotLeader, "a follower passes heartbeats on")
}

func TestDrainingHostLeavesOnceReplaced(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.host("b2", fsm.RoleBack, fsm.HostReady)
	f.install("shop", "f1", "b1")
	f.decommission("b1")
	require.Equal(t, fsm.HostDraining, f.status("b1"))
	require.Equal(t, []string{"b1:running", "b2:pending"}, f.placement("shop"))

	f.tick()
	require.Equal(t, fsm.HostDraining, f.status("b1"), "it serves until the replacement runs")

	replacement := f.instanceOn("shop", "b2")
	require.NoError(t, f.rec.Heartbeat(f.ctx, "b2", []agentproto.InstanceReport{{ID: replacement, State: agentproto.InstanceRunning}}))
	f.tick()
	require.Equal(t, fsm.HostDecommissioned, f.status("b1"))
	require.Equal(t, []string{"b2:running"}, f.placement("shop"))
}

func TestDrainingHostLeavesAfterTheTimeout(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.host("b2", fsm.RoleBack, fsm.HostReady)
	f.install("shop", "f1", "b1")
	f.decommission("b1")

	f.tick()
	for range 4 { // the replacement never starts; everyone keeps heartbeating
		f.clock.Advance(drain / 4)
		f.beat("f1", "b1", "b2")
		f.tick()
	}
	require.Equal(t, fsm.HostDecommissioned, f.status("b1"), "drained after the timeout")
	require.Equal(t, []string{"b2:pending"}, f.placement("shop"))
}

func (f *fixture) decommission(host string) {
	f.t.Helper()
	plan, err := scheduler.PlanDecommission(f.node.State(), []string{host}, scheduler.NewInstanceID)
	require.NoError(f.t, err)
	f.node.must(f.t, &fsm.Command{Type: fsm.CmdPlan, Plan: plan, Name: host})
}

func (f *fixture) instanceOn(installation, host string) string {
	f.t.Helper()
	for _, in := range f.node.State().InstancesOf(installation) {
		if in.HostID == host {
			return in.ID
		}
	}
	f.t.Fatalf("no instance of %s on %s", installation, host)
	return ""
}

// prober answers for the hosts it can reach.
type prober struct {
	mu        sync.Mutex
	reachable map[string]bool
	probed    []string
}

func (p *prober) Probe(ctx context.Context, h *fsm.Host) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probed = append(p.probed, h.Name)
	if !p.reachable[h.Name] {
		return errors.New("no answer over the tunnel")
	}
	return nil
}

func TestPendingHostsAreProbed(t *testing.T) {
	p := &prober{reachable: map[string]bool{"b1": true, "f1": true}}
	f := newFixture(t, p)
	f.host("b1", fsm.RoleBack, fsm.HostPending)
	f.host("b2", fsm.RoleBack, fsm.HostPending)
	f.host("f1", fsm.RoleFront, fsm.HostPending)
	f.host("b3", fsm.RoleBack, fsm.HostReady)

	f.tick()
	require.ElementsMatch(t, []string{"b1", "b2", "f1"}, p.probed, "only pending hosts are probed")
	require.Equal(t, fsm.HostReady, f.status("b1"))
	require.Equal(t, fsm.HostReady, f.status("f1"))
	require.Equal(t, fsm.HostPending, f.status("b2"), "unreachable: stays pending, is not down")

	p.mu.Lock()
	p.reachable["b2"], p.probed = true, nil
	p.mu.Unlock()
	f.clock.Advance(ttl)
	f.beat("b1", "f1", "b3")
	f.tick()
	require.Equal(t, []string{"b2"}, p.probed)
	require.Equal(t, fsm.HostReady, f.status("b2"))

	// A host made ready gets a full TTL from then for its first heartbeat.
	f.clock.Advance(ttl)
	f.beat("b1", "f1", "b3")
	f.tick()
	require.Equal(t, fsm.HostReady, f.status("b2"))
	f.clock.Advance(time.Second)
	f.beat("b1", "f1", "b3")
	f.tick()
	require.Equal(t, fsm.HostDown, f.status("b2"))
}

func TestWithoutProberPendingHostsBecomeReady(t *testing.T) {
	f := newFixture(t, nil)
	f.host("b1", fsm.RoleBack, fsm.HostPending)
	f.tick()
	require.Equal(t, fsm.HostReady, f.status("b1"))
}

func TestOnlyTheLeaderActs(t *testing.T) {
	f := newFixture(t, nil)
	f.host("b1", fsm.RoleBack, fsm.HostPending)
	f.host("b2", fsm.RoleBack, fsm.HostReady)
	f.node.setLeader(false)
	f.tick()
	require.Equal(t, fsm.HostPending, f.status("b1"), "a follower decides nothing")

	// A new leader has heard no heartbeat yet: every host gets a full TTL,
	// however long ago it last heartbeated to a previous leader.
	f.node.setLeader(true)
	f.tick()
	f.beat("b1", "b2")
	f.node.setLeader(false)
	f.tick()
	f.clock.Advance(10 * ttl)
	f.node.setLeader(true)
	f.tick()
	require.Equal(t, fsm.HostReady, f.status("b2"))
	f.clock.Advance(ttl + time.Second)
	f.tick()
	require.Equal(t, fsm.HostDown, f.status("b2"))
}

func TestRunStopsWithItsContext(t *testing.T) {
	f := newFixture(t, nil)
	f.host("b1", fsm.RoleBack, fsm.HostPending)
	ctx, cancel := context.WithCancel(context.Background())
	r := New(Config{Node: f.node, Interval: time.Millisecond, Logger: slog.New(slog.DiscardHandler), Now: f.clock.Now})
	done := make(chan struct{})
	go func() {
		r.Run(ctx)
		close(done)
	}()
	require.Eventually(t, func() bool { return f.status("b1") == fsm.HostReady }, 10*time.Second, time.Millisecond)
	cancel()
	<-done
}

// TestHeartbeatsCommittedInGroups: heartbeats that arrive while another
// heartbeat's change is being committed are committed together, in one
// raft entry, and each returns once its change is in.
func TestHeartbeatsCommittedInGroups(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	backs := []string{"b1", "b2", "b3", "b4"}
	for _, b := range backs {
		f.host(b, fsm.RoleBack, fsm.HostReady)
	}
	f.install("shop", "f1", backs...)
	gate := make(chan struct{})
	f.node.mu.Lock()
	f.node.gate, f.node.entered = gate, make(chan struct{}, 8)
	f.node.mu.Unlock()
	decides := f.node.decideCalls()

	errs := make(chan error, len(backs))
	beat := func(i int) {
		errs <- f.rec.Heartbeat(f.ctx, backs[i], []agentproto.InstanceReport{{ID: fmt.Sprintf("shop-%d", i), State: agentproto.InstanceFailed}})
	}
	go beat(0)
	<-f.node.entered // the first group is being committed
	for i := 1; i < len(backs); i++ {
		go beat(i)
	}
	require.Eventually(t, func() bool {
		f.rec.hbMu.Lock()
		defer f.rec.hbMu.Unlock()
		return f.rec.hbNext != nil && len(f.rec.hbNext.reports) == len(backs)-1
	}, 10*time.Second, time.Millisecond, "the others gather behind it")
	close(gate)
	for range backs {
		require.NoError(t, <-errs)
	}
	require.Equal(t, []string{"b1:failed", "b2:failed", "b3:failed", "b4:failed"}, f.placement("shop"))
	require.Equal(t, decides+2, f.node.decideCalls(), "two commits for four heartbeats")
}
