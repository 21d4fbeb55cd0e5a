package api

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
	"potluck/internal/fakeclock"
)

// memNode is a core node in memory: the real FSM, with raft's log replaced
// by a counter, and leadership and membership set by the test. Decide
// follows cluster.Node.Decide (request-id replay, builder under one lock,
// the builder's rejection as the result's error).
type memNode struct {
	fsm *fsm.FSM
	id  string
	now func() time.Time

	mu         sync.Mutex // serialises applies, like raft's log
	index      uint64
	leader     string // the leader's id; this node leads when it is id
	servers    []raft.Server
	catchUpErr error
	lagging    bool          // a follower that has not caught up (Current is false)
	decides    int           // Decide calls that reached the builder
	waiting    chan struct{} // if set, Wait sends on it before it blocks
	// afterDecide, if set, runs once a Decide committed, before it returns:
	// another write landing between a handler's commit and its read.
	afterDecide func()
}

var _ Node = (*memNode)(nil)

func newMemNode(id string, now func() time.Time) *memNode {
	return &memNode{
		fsm: fsm.New(), id: id, now: now, leader: id,
		servers: []raft.Server{{ID: raft.ServerID(id), Address: raft.ServerAddress("127.0.0.1:8401"), Suffrage: raft.Voter}},
	}
}

// apply commits c as the next log entry and returns the FSM's result.
func (n *memNode) apply(c *fsm.Command) fsm.Result {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.applyLocked(c)
}

func (n *memNode) applyLocked(c *fsm.Command) fsm.Result {
	n.index++
	return fsmtest.ApplyAt(n.fsm, n.index, n.now().UTC(), c)
}

// must applies c and fails the test when the FSM rejects it.
func (n *memNode) must(t *testing.T, c *fsm.Command) fsm.Result {
	t.Helper()
	res := n.apply(c)
	require.NoError(t, res.Err)
	return res
}

func (n *memNode) setLeader(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.leader = id
}

func (n *memNode) State() *fsm.State { return n.fsm.State() }

func (n *memNode) Wait(ctx context.Context, index uint64) *fsm.State {
	n.mu.Lock()
	waiting := n.waiting
	n.mu.Unlock()
	if waiting != nil {
		waiting <- struct{}{}
	}
	return n.fsm.Wait(ctx, index)
}

// waits makes Wait report on the returned channel before it blocks.
func (n *memNode) waits() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.waiting = make(chan struct{}, 16)
	return n.waiting
}

func (n *memNode) Lookup(requestID string) (fsm.RequestRecord, bool) {
	return n.fsm.Lookup(requestID)
}

func (n *memNode) ID() string { return n.id }

func (n *memNode) IsLeader() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader == n.id
}

func (n *memNode) Leader() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader
}

func (n *memNode) CatchUp() error {
	if !n.IsLeader() {
		return cluster.ErrNotLeader
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.catchUpErr
}

func (n *memNode) ReadBarrier() error { return n.CatchUp() }

func (n *memNode) Decide(ctx context.Context, requestID string, build cluster.Builder) (fsm.Result, error) {
	if !n.IsLeader() {
		return fsm.Result{}, cluster.ErrNotLeader
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if rec, ok := n.fsm.Lookup(requestID); ok {
		res := fsm.Result{Index: rec.Index, Ref: rec.Ref, Replayed: true}
		if rec.Error != "" {
			res.Err = &fsm.Error{Code: rec.Code, Message: rec.Error}
		}
		return res, nil
	}
	n.decides++
	now := n.now().UTC()
	c, err := build(n.fsm.State(), now)
	if err != nil || c == nil {
		return fsm.Result{Err: err}, nil
	}
	c.RequestID, c.Time = requestID, now
	res := n.applyLocked(c)
	if hook := n.afterDecide; hook != nil {
		n.mu.Unlock()
		hook()
		n.mu.Lock()
	}
	return res, nil
}

func (n *memNode) WriteBackup(w io.Writer) (cluster.BackupHeader, error) {
	if err := n.CatchUp(); err != nil {
		return cluster.BackupHeader{}, err
	}
	return cluster.EncodeBackup(w, n.fsm.State(), n.id, n.now())
}

func (n *memNode) RestoreBackup(r io.Reader, limit int64) (cluster.BackupHeader, error) {
	if !n.IsLeader() {
		return cluster.BackupHeader{}, cluster.ErrNotLeader
	}
	h, body, err := cluster.ReadBackup(r, limit)
	if err != nil {
		return cluster.BackupHeader{}, err
	}
	return h, n.fsm.Restore(io.NopCloser(bytes.NewReader(body)))
}

func (n *memNode) Current() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.leader == n.id || (n.leader != "" && !n.lagging)
}

func (n *memNode) RaftStatus() RaftStatus {
	n.mu.Lock()
	defer n.mu.Unlock()
	state := "Follower"
	if n.leader == n.id {
		state = "Leader"
	}
	return RaftStatus{State: state, AppliedIndex: n.index, LastLogIndex: n.index}
}

func (n *memNode) Servers() ([]raft.Server, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.servers), nil
}

func (n *memNode) AddVoter(id, addr string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.servers = append(n.servers, raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter})
	return nil
}

func (n *memNode) RemoveServer(id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.servers = slices.DeleteFunc(n.servers, func(s raft.Server) bool { return string(s.ID) == id })
	return nil
}

// newClock is the fake clock tests start from.
func newClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}
