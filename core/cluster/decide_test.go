package cluster_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/scheduler"
)

const (
	decideBacks   = 4
	slotsPerBack  = 3 // 1000 milli-CPUs, 300 per instance
	decideCreates = 40
)

func decideLeader(t *testing.T) *cluster.Node {
	t.Helper()
	n, err := cluster.Open(cluster.Config{ID: "core1", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Timing: cluster.FastTiming, RaftLogOutput: io.Discard})
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close() })
	require.Eventually(t, n.IsLeader, 10*time.Second, 10*time.Millisecond)
	ctx := context.Background()
	apply := func(c *fsm.Command) {
		c.Time = time.Now().UTC()
		res, err := n.Apply(ctx, c)
		require.NoError(t, err)
		require.NoError(t, res.Err)
	}
	for i := range decideBacks {
		apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: fmt.Sprintf("h%d", i), Name: fmt.Sprintf("back%d", i), Role: fsm.RoleBack, PublicKey: fmt.Sprintf("key%d", i),
			TokenID: fsm.OperatorTokenID, Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 4096, DiskMB: 1000},
		}})
	}
	apply(&fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "web", Image: "web:1", ContainerPort: 80}})
	return n
}

var per = fsm.Resources{MilliCPU: 300, MemoryMB: 64, DiskMB: 1}

// createConcurrently runs decideCreates creates of one instance each at
// once through Decide, as the API does, and returns their errors.
func createConcurrently(t *testing.T, n *cluster.Node) []error {
	t.Helper()
	var ids atomic.Int64
	newID := func() string { return fmt.Sprintf("i%d", ids.Add(1)) }
	errs := make([]error, decideCreates)
	var wg sync.WaitGroup
	for i := range decideCreates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := n.Decide(context.Background(), fmt.Sprintf("create-%d", i), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
				inst := &fsm.Installation{Name: fmt.Sprintf("site%d", i), App: "web", Backs: 1, Domain: fmt.Sprintf("site%d.example", i), ContainerPort: 80, PerInstance: per}
				_, instances, err := scheduler.PlanInstallation(st, inst, newID)
				if err != nil {
					return nil, err
				}
				return &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: inst, Instances: instances}, nil
			})
			if err == nil {
				err = res.Err
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	return errs
}

// Decisions proposed while earlier ones are still committing plan on a
// state that includes those: concurrent creates fill every slot exactly
// once, and the rest are refused for capacity, never for a port taken or a
// host overcommitted.
func TestConcurrentDecisionsSeeEachOther(t *testing.T) {
	n := decideLeader(t)
	errs := createConcurrently(t, n)
	placed := 0
	for _, err := range errs {
		if err == nil {
			placed++
			continue
		}
		require.ErrorContains(t, err, "not enough capacity")
	}
	require.Equal(t, decideBacks*slotsPerBack, placed)
	st := n.FSM.State()
	require.NoError(t, st.CheckInvariants())
	require.Len(t, st.Instances, decideBacks*slotsPerBack)
}

// writesAroundDecide creates installation "ext" (at most maxPerHost per
// host) and then commits writes instances of it straight through raft,
// bypassing Decide and its draft, until stop is called: each at the
// instance place(j) picks. It stands for any change a draft misses.
func writesAroundDecide(t *testing.T, n *cluster.Node, maxPerHost, writes int, place func(j int) *fsm.Instance) (stop func()) {
	t.Helper()
	ctx := context.Background()
	res, err := n.Apply(ctx, &fsm.Command{Type: fsm.CmdCreateInstallation, Time: time.Now().UTC(), Installation: &fsm.Installation{
		Name: "ext", App: "web", Domain: "ext.example", ContainerPort: 80, PerInstance: per, Placement: &fsm.Placement{MaxPerHost: maxPerHost},
	}})
	require.NoError(t, err)
	require.NoError(t, res.Err)
	done := make(chan struct{})
	var external sync.WaitGroup
	external.Add(1)
	go func() {
		defer external.Done()
		for j := range writes {
			select {
			case <-done:
				return
			default:
			}
			in := place(j)
			in.ID, in.Installation = fmt.Sprintf("x%d", j), "ext"
			_, _ = n.Apply(ctx, &fsm.Command{Type: fsm.CmdPlan, Time: time.Now().UTC(), Plan: &fsm.Plan{Add: []*fsm.Instance{in}}})
		}
	}()
	return func() { close(done); external.Wait() }
}

// Writes that bypass Decide take ports and capacity the decisions in flight
// planned on: those proposals fail in the FSM, the next decisions start
// again from the committed state, and no port is ever used twice nor a host
// overcommitted.
func TestFailedProposalsNeverOvercommit(t *testing.T) {
	n := decideLeader(t)
	stop := writesAroundDecide(t, n, slotsPerBack, 12, func(j int) *fsm.Instance {
		// The lowest ports, where the scheduler places first.
		return &fsm.Instance{HostID: fmt.Sprintf("h%d", j%decideBacks), Port: fsm.MinPort + j/decideBacks}
	})
	errs := createConcurrently(t, n)
	stop()

	st := n.FSM.State()
	require.NoError(t, st.CheckInvariants())
	require.LessOrEqual(t, len(st.Instances), decideBacks*slotsPerBack)
	placed := 0
	for i, err := range errs {
		_, ok := st.Installations[fmt.Sprintf("site%d", i)]
		require.Equal(t, err == nil, ok, "create %d: %v", i, err)
		if ok {
			placed++
		}
	}
	require.Equal(t, len(st.Instances), placed+len(st.InstancesOf("ext")))
}

// A decision planned on a draft that ran ahead of the committed state can
// be refused when what commits differs from the draft (here, writes that
// bypass Decide take the ports the draft handed out). Such a refusal is the
// draft's mistake, not the request's: the leader decides again on the
// committed state, so with room to spare every create succeeds.
func TestRefusedTentativeDecisionsAreDecidedAgain(t *testing.T) {
	n := decideLeader(t)
	ctx := context.Background()
	for i := range decideBacks { // room for every create and every external write
		res, err := n.Apply(ctx, &fsm.Command{Type: fsm.CmdRegisterHost, Time: time.Now().UTC(), Host: &fsm.Host{
			ID: fmt.Sprintf("big%d", i), Name: fmt.Sprintf("big%d", i), Role: fsm.RoleBack, PublicKey: fmt.Sprintf("bigkey%d", i),
			TokenID: fsm.OperatorTokenID, Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 100000, MemoryMB: 100000, DiskMB: 100000},
		}})
		require.NoError(t, err)
		require.NoError(t, res.Err)
	}
	stop := writesAroundDecide(t, n, 100, 40, func(j int) *fsm.Instance {
		// Just above the lowest free port, where the draft places next; a
		// port the FSM already holds refuses this write, not a create.
		host := fmt.Sprintf("big%d", j%decideBacks)
		port := fsm.MinPort
		for n.FSM.State().UsedPorts(host)[port] {
			port++
		}
		return &fsm.Instance{HostID: host, Port: port + 1}
	})
	errs := createConcurrently(t, n)
	stop()
	for i, err := range errs {
		require.NoError(t, err, "create %d", i)
	}
	require.NoError(t, n.FSM.State().CheckInvariants())
}
