// Package cluster runs the core's raft group: hashicorp/raft with a bolt log
// and stable store, a file snapshot store and the TCP transport. It bootstraps
// from one identical peer list (or a single node for development), brings a
// restarted node back from its data directory, and applies commands with a
// timeout. Forwarding of writes from followers to the leader is done at the
// HTTP layer (package api); Apply here works on the leader only.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"potluck/core/fsm"
)

// ErrNotLeader is returned by Apply on a follower.
var ErrNotLeader = errors.New("this core node is not the raft leader")

// Peer is one voter of the raft group.
type Peer struct {
	ID   string
	Addr string // raft TCP host:port
}

// ParsePeers parses "id=host:port,id=host:port".
func ParsePeers(s string) ([]Peer, error) {
	var out []Peer
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q: want id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("peer %q: %w", part, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("peer id %q listed twice", id)
		}
		seen[id] = true
		out = append(out, Peer{ID: id, Addr: addr})
	}
	return out, nil
}

// Timing holds raft timeouts; zero values keep hashicorp/raft's defaults,
// except CommitTimeout (DefaultCommitTimeout). Tests use short ones.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
}

// DefaultCommitTimeout is how long an idle leader waits before it sends
// each follower an AppendEntries (besides raft's heartbeats, every
// HeartbeatTimeout/10). raft's default of 50 ms made that the largest part
// of an idle leader's work: 200 ms takes its idle CPU from 2.9 % to 1.9 %
// of a core (docs/operations.md, Idle cost). The price: a follower learns
// that the last write committed up to 2 x 200 ms later (?stale reads on it
// lag that much; writes and default reads, on the leader, do not).
const DefaultCommitTimeout = 200 * time.Millisecond

// FastTiming is for tests and local clusters on one machine.
var FastTiming = Timing{
	HeartbeatTimeout:   500 * time.Millisecond,
	ElectionTimeout:    500 * time.Millisecond,
	LeaderLeaseTimeout: 250 * time.Millisecond,
	CommitTimeout:      DefaultCommitTimeout,
}

// Config configures one raft node.
type Config struct {
	ID            string // stable server id, e.g. "core1"
	DataDir       string // raft.db and snapshots/ live here
	RaftBind      string // TCP listen address for raft
	RaftAdvertise string // address peers dial; defaults to RaftBind
	// Peers is the identical bootstrap list of every voter, including this
	// node. Empty means a single-node group of this node alone.
	Peers []Peer
	// Join: with an empty data dir, do not bootstrap; wait to be added as a
	// voter by the leader of an existing group (see AddVoter).
	Join bool
	// TLS secures raft between core nodes (mutual TLS, see core/pki). Nil
	// runs raft over plain TCP, which only tests of a single process use.
	TLS               *TLS
	Timing            Timing
	SnapshotThreshold uint64        // entries between snapshots; 0 = 8192
	SnapshotInterval  time.Duration // how often to check; 0 = 120s
	ApplyTimeout      time.Duration // 0 = 10s
	Logger            *slog.Logger
	Now               func() time.Time // clock for command timestamps; nil = time.Now
	RaftLogOutput     io.Writer        // hashicorp/raft's own log; nil = stderr at warn
}

// Node is one running raft member with its FSM.
type Node struct {
	cfg   Config
	Raft  *raft.Raft
	FSM   *fsm.FSM
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
	log   *slog.Logger

	decideMu    decideLock // serialises leader decisions (see Decide), urgent ones first
	barrierTerm uint64     // term in which this leader last passed a barrier; under decideMu
	// Decisions proposed and not yet committed, and the draft state that
	// includes them (see Decide). draft and draftAt are under decideMu;
	// proposals counts the proposals in flight (Add under decideMu, Done
	// when raft answers) and pending is its count.
	draft      *fsm.Draft
	draftAt    time.Time
	proposals  sync.WaitGroup
	pending    atomic.Int64
	draftStale atomic.Bool // a proposal failed or came out otherwise than on the draft
	fence      readFence   // batches leadership confirmations of reads
}

// Open starts a raft node, restoring state from DataDir, and bootstraps the
// group when DataDir is empty.
func Open(cfg Config) (*Node, error) {
	if cfg.ID == "" {
		return nil, errors.New("cluster: node id is empty")
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RaftLogOutput == nil {
		cfg.RaftLogOutput = os.Stderr
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: data dir: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft/" + cfg.ID, Level: hclog.Warn, Output: cfg.RaftLogOutput})
	rc.CommitTimeout = DefaultCommitTimeout
	// Proposals queue while the leader writes the previous group to its
	// log, and the next group commit takes them all: unbuffered, a proposal
	// waits for that write inside Decide's lock and every group holds one
	// decision. (Apply's timeout then bounds the enqueue only, which is all
	// it bounded before too: the commit is awaited on the future.)
	rc.BatchApplyCh = true
	if t := cfg.Timing; t.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = t.HeartbeatTimeout
		rc.ElectionTimeout = t.ElectionTimeout
		rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	}
	if t := cfg.Timing; t.CommitTimeout > 0 {
		rc.CommitTimeout = t.CommitTimeout
	}
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}

	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.DataDir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("cluster: open raft.db: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, rc.Logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: snapshot store: %w", err)
	}
	advertise := cfg.RaftAdvertise
	if advertise == "" {
		advertise = cfg.RaftBind
	}
	adv, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: raft advertise address: %w", err)
	}
	trans, err := newTransport(cfg, adv, rc.Logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("cluster: raft transport: %w", err)
	}
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("cluster: log cache: %w", err)
	}
	machine := fsm.New()
	hasState, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("cluster: check state: %w", err)
	}
	if err := recoverFromPeersJSON(cfg, rc, logs, store, snaps, trans); err != nil {
		trans.Close()
		store.Close()
		return nil, err
	}
	if !hasState && cfg.Join {
		cfg.Logger.Info("empty data dir: waiting to be added to an existing group", "node", cfg.ID)
	}
	if !hasState && !cfg.Join {
		peers := cfg.Peers
		if len(peers) == 0 {
			peers = []Peer{{ID: cfg.ID, Addr: advertise}}
		}
		var conf raft.Configuration
		self := false
		for _, p := range peers {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
			self = self || p.ID == cfg.ID
		}
		if !self {
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("cluster: peer list does not contain this node %q", cfg.ID)
		}
		if err := raft.BootstrapCluster(rc, logs, store, snaps, trans, conf); err != nil {
			trans.Close()
			store.Close()
			return nil, fmt.Errorf("cluster: bootstrap: %w", err)
		}
		cfg.Logger.Info("bootstrapped raft group", "node", cfg.ID, "voters", len(peers))
	}
	r, err := raft.NewRaft(rc, machine, logs, store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("cluster: start raft: %w", err)
	}
	return &Node{cfg: cfg, Raft: r, FSM: machine, store: store, trans: trans, log: cfg.Logger}, nil
}

// newTransport is raft's TCP transport, over mutual TLS when cfg.TLS is set.
func newTransport(cfg Config, adv *net.TCPAddr, logger hclog.Logger) (*raft.NetworkTransport, error) {
	var advertise net.Addr
	if adv.Port != 0 {
		advertise = adv // port 0: advertise the port the listener got
	}
	if cfg.TLS == nil {
		return raft.NewTCPTransportWithLogger(cfg.RaftBind, advertise, 3, 10*time.Second, logger)
	}
	stream, err := newTLSStream(cfg.RaftBind, advertise, *cfg.TLS, func(remote string, err error) {
		cfg.Logger.Warn("refused a raft connection that is not from a cluster member", "remote", remote, "err", err)
	})
	if err != nil {
		return nil, err
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: logger}), nil
}

// ID is this node's raft server id.
func (n *Node) ID() string { return n.cfg.ID }

// RaftAddr is the address peers dial.
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// IsLeader reports whether this node is the leader.
func (n *Node) IsLeader() bool { return n.Raft.State() == raft.Leader }

// Leader returns the leader's id, or "" when none is known.
func (n *Node) Leader() string {
	_, id := n.Raft.LeaderWithID()
	return string(id)
}

// Servers lists the voters of the current configuration.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.Raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	return f.Configuration().Servers, nil
}

// Apply commits a command through raft and waits until this node applied it.
// It works on the leader only. A timeout or lost leadership is indeterminate:
// the command may still commit, which is why commands carry request ids.
func (n *Node) Apply(ctx context.Context, c *fsm.Command) (fsm.Result, error) {
	if !n.IsLeader() {
		return fsm.Result{}, ErrNotLeader
	}
	data, err := json.Marshal(c)
	if err != nil {
		return fsm.Result{}, fmt.Errorf("encode command: %w", err)
	}
	return answer(n.Raft.Apply(data, n.applyTimeout(ctx)))
}

// applyTimeout is how long raft may take to commit a command for ctx.
func (n *Node) applyTimeout(ctx context.Context) time.Duration {
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	return timeout
}

// answer waits for a proposal's outcome.
func answer(f raft.ApplyFuture) (fsm.Result, error) {
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return fsm.Result{}, ErrNotLeader
		}
		return fsm.Result{}, fmt.Errorf("raft apply (outcome unknown, retry with the same request id): %w", err)
	}
	res, ok := f.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, fmt.Errorf("raft apply: unexpected response %T", f.Response())
	}
	return res, nil
}

// AddVoter adds a server to the group (leader only). Adding a server that is
// already a voter with the same address is a no-op.
func (n *Node) AddVoter(id, addr string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.Raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("add voter %s: %w", id, err)
	}
	return nil
}

// RemoveServer removes a server from the group (leader only).
func (n *Node) RemoveServer(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.Raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, err)
	}
	return nil
}

// Barrier waits until every committed entry is applied locally (used by a new
// leader before it makes decisions on its state).
func (n *Node) Barrier(timeout time.Duration) error {
	return n.Raft.Barrier(timeout).Error()
}

// Snapshot forces a snapshot now.
func (n *Node) Snapshot() error {
	return n.Raft.Snapshot().Error()
}

// Close shuts raft down and closes its stores.
func (n *Node) Close() error {
	err := n.Raft.Shutdown().Error()
	if cerr := n.trans.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if cerr := n.store.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

// Builder turns the current state into a command (or a rejection). It runs on
// the leader under the decision lock, so two builders never see the same state
// and then commit conflicting placements.
type Builder func(st *fsm.State, now time.Time) (*fsm.Command, error)

// CatchUp makes sure this leader has applied everything committed before its
// term began (a raft barrier, once per term), so reads on it see every
// acknowledged write.
func (n *Node) CatchUp() error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	n.decideMu.Lock()
	defer n.decideMu.Unlock()
	return n.catchUpLocked()
}

func (n *Node) catchUpLocked() error {
	if term := n.Raft.CurrentTerm(); term != n.barrierTerm {
		if err := n.Barrier(n.cfg.ApplyTimeout); err != nil {
			return fmt.Errorf("raft barrier: %w", err)
		}
		n.barrierTerm = term
	}
	return nil
}

// maxDraftAge bounds how long decisions are planned on a draft without
// starting again from the committed state: writes that do not go through
// Decide (heartbeats' group commits, say) reach the draft only then.
const maxDraftAge = time.Second

// Decide builds a command from the leader's current state and commits it. A
// request id that was applied before is answered from the FSM's record
// without building anything (so a retried create does not fail as a
// duplicate). The builder may return (nil, nil) to do nothing.
//
// The decision lock covers building and proposing, not the commit: the
// builder sees the committed state plus every command proposed before it
// and not committed yet (a fsm.Draft), so decisions are still made one at a
// time on a state that includes all earlier ones (no two placements on one
// port, no host overcommitted), while their commits overlap and raft
// writes many in one group commit. If a proposal fails or commits with
// another outcome than on the draft, the next decision waits for every
// proposal in flight and starts again from the committed state.
//
// Decisions wait for the lock in arrival order, except that those made
// with an Urgent context (heartbeats' group commits) go first.
//
// A command planned with proposals ahead of it is tentative, as a plan is
// in Nomad's optimistic scheduler: if the FSM refuses it, the refusal may
// come from the draft having run ahead (an earlier proposal failed, or the
// draft missed a change), so the FSM does not record it and Decide builds
// the request once more, on the committed state alone, whose answer is
// final.
func (n *Node) Decide(ctx context.Context, requestID string, build Builder) (fsm.Result, error) {
	if !n.IsLeader() {
		return fsm.Result{}, ErrNotLeader
	}
	res, tentative, err := n.decide(ctx, requestID, build, true)
	if err == nil && res.Err != nil && tentative {
		n.log.Info("a decision planned ahead of the committed state was refused; deciding again on the committed state", "request_id", requestID, "error", res.Err)
		res, _, err = n.decide(ctx, requestID, build, false)
	}
	return res, err
}

// decide proposes one command and waits for its outcome; tentative says
// whether it was planned with proposals ahead of it.
func (n *Node) decide(ctx context.Context, requestID string, build Builder, ahead bool) (fsm.Result, bool, error) {
	p, res, err := n.propose(ctx, requestID, build, ahead)
	if p.f == nil {
		return res, false, err
	}
	res, err = n.await(p)
	return res, p.tentative, err
}

// proposal is a command handed to raft: planned says whether it succeeded
// on the draft, tentative whether proposals were ahead of it there.
type proposal struct {
	f                  raft.ApplyFuture
	planned, tentative bool
}

// propose builds the command on the draft and hands it to raft, under the
// decision lock; ahead false makes it wait until nothing is in flight, so
// it plans on the committed state. A nil future means the answer is res,
// err already.
func (n *Node) propose(ctx context.Context, requestID string, build Builder, ahead bool) (proposal, fsm.Result, error) {
	n.decideMu.lock(isUrgent(ctx))
	defer n.decideMu.Unlock()
	// Make sure everything committed under a previous leader is applied here
	// before deciding on it: once per term (a barrier is a log entry).
	if err := n.catchUpLocked(); err != nil {
		return proposal{}, fsm.Result{}, err
	}
	now := n.cfg.Now().UTC()
	if !ahead || n.draft != nil && (n.draftStale.Swap(false) || n.draft.Broken() || n.draft.Has(requestID) || now.Sub(n.draftAt) > maxDraftAge) {
		// A retry of a request in flight waits for its outcome, to be
		// answered from the record as below.
		n.proposals.Wait()
		n.draft = nil
	}
	if n.pending.Load() == 0 {
		n.draft = nil // everything proposed is applied: start from the committed state
	}
	if rec, ok := n.FSM.Lookup(requestID); ok {
		res := fsm.Result{Index: rec.Index, Ref: rec.Ref, Replayed: true}
		if rec.Error != "" {
			res.Err = &fsm.Error{Code: rec.Code, Message: rec.Error}
		}
		return proposal{}, res, nil
	}
	if n.draft == nil {
		n.draft, n.draftAt = n.FSM.NewDraft(), now
		n.draftStale.Store(false)
	}
	c, err := build(n.draft.State(), now)
	if err != nil || c == nil {
		return proposal{}, fsm.Result{Err: err}, nil
	}
	c.RequestID, c.Time, c.Tentative = requestID, now, n.pending.Load() > 0
	data, err := json.Marshal(c)
	if err != nil {
		return proposal{}, fsm.Result{}, fmt.Errorf("encode command: %w", err)
	}
	p := proposal{planned: n.draft.Apply(c), tentative: c.Tentative}
	n.proposals.Add(1)
	n.pending.Add(1)
	timeout := n.applyTimeout(ctx)
	start := time.Now()
	p.f = n.Raft.Apply(data, timeout)
	if timeout > 0 && time.Since(start) >= timeout {
		// Raft may have given up taking it (ErrEnqueueTimeout): the draft
		// would hold a command the log never gets, and the next decision,
		// which may take the lock before this one's outcome is known, must
		// not plan on it.
		n.draftStale.Store(true)
	}
	return p, fsm.Result{}, nil
}

// await waits for a proposal's commit. One that succeeded on the draft must
// succeed in the FSM too; if not, the draft is wrong.
func (n *Node) await(p proposal) (fsm.Result, error) {
	defer n.proposals.Done()
	defer n.pending.Add(-1)
	res, err := answer(p.f)
	if err != nil || (res.Err != nil && p.planned) {
		n.draftStale.Store(true)
	}
	return res, err
}

// Current reports whether this node's state is known to hold every committed
// write, so that it may act on what its state lacks (delete a blob no app
// uses, say): a leader that passes a barrier started now (ReadBarrier: a
// leader deposed while paused fails it), or a follower in
// recent contact with a leader that has applied everything it knows to be
// committed. A node alone, restarted and not yet caught up, is not current:
// its state may miss what the others committed while it was away.
func (n *Node) Current() bool {
	if n.IsLeader() {
		return n.ReadBarrier() == nil
	}
	if addr, _ := n.Raft.LeaderWithID(); addr == "" {
		return false
	}
	contact := n.Raft.LastContact()
	if contact.IsZero() || time.Since(contact) > n.contactBound() {
		return false
	}
	return n.Raft.AppliedIndex() >= n.Raft.CommitIndex()
}

// contactBound is how old a follower's last contact with the leader may be
// for its state to count as current.
func (n *Node) contactBound() time.Duration {
	hb := n.cfg.Timing.HeartbeatTimeout
	if hb == 0 {
		hb = raft.DefaultConfig().HeartbeatTimeout
	}
	return 3 * hb
}
