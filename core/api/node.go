package api

import (
	"context"
	"io"

	"github.com/hashicorp/raft"

	"potluck/core/cluster"
	"potluck/core/fsm"
)

// Node is what the API needs of its core node: the replicated state, the
// leader's decisions, and raft leadership and membership. ClusterNode
// adapts the raft node; tests use a node in memory.
type Node interface {
	// State is the replicated state as this node applied it; callers must
	// not modify it.
	State() *fsm.State
	// Wait blocks until the state index is above index or ctx ends, and
	// returns the state then (blocking queries).
	Wait(ctx context.Context, index uint64) *fsm.State
	// Lookup returns the recorded outcome of an applied request id.
	Lookup(requestID string) (fsm.RequestRecord, bool)

	ID() string
	IsLeader() bool
	// Leader is the leader's id, or "" when none is known.
	Leader() string
	// CatchUp makes sure the leader applied everything committed before its
	// term (a raft barrier); cluster.ErrNotLeader on a follower.
	CatchUp() error
	// ReadBarrier confirms, after the call, that this node still leads and
	// has applied everything committed: what a linearizable read needs.
	// cluster.ErrNotLeader on a follower or a deposed leader.
	ReadBarrier() error
	// Decide builds a command from the leader's state and commits it; see
	// cluster.Node.Decide. cluster.ErrNotLeader on a follower.
	Decide(ctx context.Context, requestID string, build cluster.Builder) (fsm.Result, error)

	// Current reports whether this node's state is known to hold every
	// committed write (cluster.Node.Current); a node that is not current
	// answers 503 rather than "not found".
	Current() bool

	// RaftStatus is this node's view of the raft log, for /v1/status.
	RaftStatus() RaftStatus
	// Servers lists the members of the raft group.
	Servers() ([]raft.Server, error)
	AddVoter(id, addr string) error
	// WriteBackup writes the state after a barrier (leader only);
	// RestoreBackup replaces the state with one (leader only). See
	// cluster.Node.
	WriteBackup(w io.Writer) (cluster.BackupHeader, error)
	RestoreBackup(r io.Reader, limit int64) (cluster.BackupHeader, error)
	RemoveServer(id string) error
}

// RaftStatus is a node's view of its raft log.
type RaftStatus struct {
	State        string // Leader, Follower, Candidate, Shutdown
	AppliedIndex uint64
	LastLogIndex uint64
}

// ClusterNode gives the API a raft node.
func ClusterNode(n *cluster.Node) Node { return clusterNode{n} }

type clusterNode struct{ *cluster.Node }

func (n clusterNode) State() *fsm.State { return n.FSM.State() }

func (n clusterNode) Wait(ctx context.Context, index uint64) *fsm.State {
	return n.FSM.Wait(ctx, index)
}

func (n clusterNode) Lookup(requestID string) (fsm.RequestRecord, bool) {
	return n.FSM.Lookup(requestID)
}

func (n clusterNode) RaftStatus() RaftStatus {
	return RaftStatus{State: n.Raft.State().String(), AppliedIndex: n.Raft.AppliedIndex(), LastLogIndex: n.Raft.LastIndex()}
}
