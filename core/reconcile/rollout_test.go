package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/fsm"
)

// deployRelease2 starts release 2 of shop on b1 and b2 beside release 1.
func (f *fixture) deployRelease2() {
	f.t.Helper()
	f.node.must(f.t, &fsm.Command{Type: fsm.CmdDeployRelease, Name: "shop", Release: &fsm.Release{
		Version: 2, App: "web", PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 256, DiskMB: 10}, ContainerPort: 8080,
		Env: map[string]string{"V": "2"},
	}, Instances: []*fsm.Instance{
		{ID: "new-b1", Installation: "shop", HostID: "b1", Port: 5100, Release: 2},
		{ID: "new-b2", Installation: "shop", HostID: "b2", Port: 5100, Release: 2},
	}})
}

func (f *fixture) report(host string, reports ...agentproto.InstanceReport) {
	f.t.Helper()
	require.NoError(f.t, f.rec.Heartbeat(f.ctx, host, reports))
}

func TestRollout(t *testing.T) {
	setup := func(t *testing.T) *fixture {
		f := newFixture(t, nil)
		f.host("f1", fsm.RoleFront, fsm.HostReady)
		f.host("b1", fsm.RoleBack, fsm.HostReady)
		f.host("b2", fsm.RoleBack, fsm.HostReady)
		f.install("shop", "f1", "b1", "b2")
		f.tick()
		f.deployRelease2()
		return f
	}
	running := agentproto.InstanceReport{ID: "new-b1", State: agentproto.InstanceRunning}

	t.Run("promoted once every new instance runs; the old drain, then go", func(t *testing.T) {
		f := setup(t)
		f.report("b1", running)
		f.tick()
		require.Equal(t, 1, f.node.State().Installations["shop"].LiveRelease(), "one of two runs: not yet")
		f.report("b2", agentproto.InstanceReport{ID: "new-b2", State: agentproto.InstanceRunning})
		f.tick()
		st := f.node.State()
		require.Equal(t, 2, st.Installations["shop"].Release)
		require.Equal(t, map[string]string{"V": "2"}, st.Installations["shop"].Env)
		require.Equal(t, []string{"b1:draining", "b1:running", "b2:draining", "b2:running"}, f.placement("shop"))

		// The Back still reports the old container running: it stays draining.
		f.report("b1", running, agentproto.InstanceReport{ID: "shop-0", State: agentproto.InstanceRunning})
		require.Equal(t, fsm.InstanceDraining, f.node.State().Instances["shop-0"].State)

		f.clock.Advance(DefaultDrainTime - time.Second)
		f.tick()
		require.Len(t, f.placement("shop"), 4, "still draining")
		f.clock.Advance(time.Second)
		f.beat("f1", "b1", "b2")
		f.tick()
		require.Equal(t, []string{"b1:running", "b2:running"}, f.placement("shop"))
	})

	t.Run("a failed instance fails the release; the live one keeps serving", func(t *testing.T) {
		f := setup(t)
		f.report("b1", agentproto.InstanceReport{ID: "new-b1", State: agentproto.InstanceFailed, Message: "app does not answer on its port"})
		f.tick()
		st := f.node.State()
		inst := st.Installations["shop"]
		require.Equal(t, 1, inst.LiveRelease())
		r2, _ := inst.ReleaseByVersion(2)
		require.Equal(t, fsm.ReleaseFailed, r2.Status)
		require.Equal(t, "instance new-b1 on b1 failed: app does not answer on its port", r2.Message)
		require.Equal(t, []string{"b1:running", "b2:running"}, f.placement("shop"))
	})

	t.Run("a release not healthy in time fails", func(t *testing.T) {
		f := setup(t)
		f.report("b1", running)
		f.clock.Advance(DefaultRolloutTimeout + time.Second)
		f.beat("f1", "b1", "b2")
		f.tick()
		r2, _ := f.node.State().Installations["shop"].ReleaseByVersion(2)
		require.Equal(t, fsm.ReleaseFailed, r2.Status)
		require.Contains(t, r2.Message, "not healthy within 5m0s (new-b1 running, new-b2 pending)")
	})
}

// TestRepairKeepsReleases: when a Back dies after a rollout, its instance
// of the live release is replaced by one of the same release, and its
// draining instance of the old release is not replaced at all (on the old
// code: a replacement of the live release for each, one instance too many).
func TestRepairKeepsReleases(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.host("b2", fsm.RoleBack, fsm.HostReady)
	f.host("b3", fsm.RoleBack, fsm.HostReady)
	f.install("shop", "f1", "b1", "b2")
	f.tick()
	f.deployRelease2()
	f.report("b1", agentproto.InstanceReport{ID: "new-b1", State: agentproto.InstanceRunning})
	f.report("b2", agentproto.InstanceReport{ID: "new-b2", State: agentproto.InstanceRunning})
	f.tick()
	require.Equal(t, 2, f.node.State().Installations["shop"].Release)

	f.clock.Advance(ttl + time.Second)
	f.beat("f1", "b1", "b3")
	f.tick()
	st := f.node.State()
	require.Equal(t, fsm.HostDown, st.Hosts["b2"].Status)
	byRelease := map[int]int{}
	for _, in := range st.InstancesOf("shop") {
		if in.State != fsm.InstanceDraining {
			byRelease[in.Release]++
		}
		if in.HostID == "b3" {
			require.Equal(t, 2, in.Release, "the replacement runs the live release")
		}
	}
	require.Equal(t, map[int]int{2: 2}, byRelease, "two instances of release 2, none new of release 1")
}

// Issue 17: a deleted installation leaves the Fronts' routes at once, its
// instances keep running for the drain (requests in flight finish), and only
// then does the leader delete it.
func TestDeletedInstallationDrainsFirst(t *testing.T) {
	f := newFixture(t, nil)
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.install("shop", "f1", "b1")
	f.tick()
	f.node.must(f.t, &fsm.Command{Type: fsm.CmdRetireInstallation, Name: "shop"})
	st := f.node.State()
	require.True(t, st.Installations["shop"].Deleting)
	require.Equal(t, []string{"b1:draining"}, f.placement("shop"), "not routed, still running")

	f.clock.Advance(DefaultDrainTime - time.Second)
	f.tick()
	require.NotNil(t, f.node.State().Installations["shop"], "kept while its instances drain")
	f.clock.Advance(2 * time.Second)
	f.tick()
	require.Nil(t, f.node.State().Installations["shop"], "deleted once drained")
	require.Empty(t, f.node.State().InstancesOf("shop"))
}

// TestEveryRolloutStepIsLogged: a round commits at most maxRolloutSteps
// rollout commands and logs each one it commits (the old loop committed one
// more than it logged); the next round goes on.
func TestEveryRolloutStepIsLogged(t *testing.T) {
	f := newFixture(t, nil)
	logged := &countHandler{msg: "deleted installation drained; removed"}
	f.rec = New(Config{Node: f.node, TTL: ttl, DrainTimeout: drain, Logger: slog.New(logged), Now: f.clock.Now})
	f.host("f1", fsm.RoleFront, fsm.HostReady)
	f.node.must(t, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
		ID: "big", Name: "big", Role: fsm.RoleBack, PublicKey: "key-big", TokenID: "t", Status: fsm.HostReady,
		Capacity: fsm.Resources{MilliCPU: 100_000, MemoryMB: 100_000, DiskMB: 100_000},
	}})
	const total = maxRolloutSteps + 6
	for i := range total {
		name := fmt.Sprintf("shop%d", i)
		f.node.must(t, &fsm.Command{Type: fsm.CmdCreateInstallation,
			Installation: &fsm.Installation{Name: name, App: "web", Fronts: 1, Backs: 1, Domain: name + ".example", ContainerPort: 8080,
				PerInstance: fsm.Resources{MilliCPU: 100, MemoryMB: 64, DiskMB: 10}, FrontHosts: []string{"f1"}},
			Instances: []*fsm.Instance{{ID: name + "-0", Installation: name, HostID: "big", Port: fsm.MinPort + i, State: fsm.InstanceRunning}}})
		f.node.must(t, &fsm.Command{Type: fsm.CmdRetireInstallation, Name: name})
	}
	f.clock.Advance(DefaultDrainTime)
	f.beat("f1", "big")

	f.tick()
	deleted := total - len(f.node.State().Installations)
	require.Equal(t, maxRolloutSteps, deleted, "a round is bounded")
	require.Equal(t, deleted, logged.count(), "every deletion committed is logged")
	f.tick()
	require.Empty(t, f.node.State().Installations)
	require.Equal(t, total, logged.count())
}

// countHandler counts the records logged with one message.
type countHandler struct {
	msg string
	mu  sync.Mutex
	n   int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}

func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

func (h *countHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}
