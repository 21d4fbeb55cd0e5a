package reconcile

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
	"potluck/internal/fakeclock"
)

// memNode is a core node in memory: the real FSM, with raft's log replaced
// by a counter and leadership set by the test. Decide follows
// cluster.Node.Decide.
type memNode struct {
	fsm *fsm.FSM
	now func() time.Time

	mu      sync.Mutex // serialises applies, like raft's log
	index   uint64
	leader  bool
	decides int // Decide calls
	// gate, when set, holds every Decide until it is closed; entered
	// counts the Decides that reached it.
	gate    chan struct{}
	entered chan struct{}
}

var _ Node = (*memNode)(nil)

func newMemNode(now func() time.Time) *memNode {
	return &memNode{fsm: fsm.New(), now: now, leader: true}
}

func (n *memNode) applyLocked(c *fsm.Command) fsm.Result {
	n.index++
	return fsmtest.ApplyAt(n.fsm, n.index, n.now().UTC(), c)
}

// must applies c and fails the test when the FSM rejects it.
func (n *memNode) must(t *testing.T, c *fsm.Command) fsm.Result {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	res := n.applyLocked(c)
	require.NoError(t, res.Err)
	return res
}

func (n *memNode) setLeader(leads bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.leader = leads
}

func (n *memNode) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

func (n *memNode) State() *fsm.State { return n.fsm.State() }

// decideCalls is how many times Decide was called.
func (n *memNode) decideCalls() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.decides
}

func (n *memNode) Decide(ctx context.Context, requestID string, build cluster.Builder) (fsm.Result, error) {
	n.mu.Lock()
	gate, entered := n.gate, n.entered
	n.mu.Unlock()
	if gate != nil {
		entered <- struct{}{}
		<-gate
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.decides++
	if !n.leader {
		return fsm.Result{}, cluster.ErrNotLeader
	}
	if rec, ok := n.fsm.Lookup(requestID); ok {
		return fsm.Result{Index: rec.Index, Ref: rec.Ref, Replayed: true}, nil
	}
	now := n.now().UTC()
	c, err := build(n.fsm.State(), now)
	if err != nil || c == nil {
		return fsm.Result{Err: err}, nil
	}
	c.RequestID, c.Time = requestID, now
	return n.applyLocked(c), nil
}

// newClock is the fake clock tests start from.
func newClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}
