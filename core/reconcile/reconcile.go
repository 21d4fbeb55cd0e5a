// Package reconcile is the leader's control loop: it probes newly registered
// hosts over the tunnel before they become Ready, tracks host heartbeats in
// memory, marks hosts that missed them for the TTL as down, commits plans
// that move their instances to other Backs and replace their Fronts, and
// drives release rollouts (promote, fail, remove drained instances). Every
// decision goes through raft (Node.Decide); followers do nothing.
package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"potluck/agentproto"
	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/scheduler"
)

// DefaultTTL is how long a host may go without a heartbeat before it is down.
const DefaultTTL = 30 * time.Second

// DefaultDrainTimeout is how long a decommissioned host may keep its
// instances while their replacements fail to start before it leaves anyway.
const DefaultDrainTimeout = 2 * time.Minute

// Probing pending hosts: each probe gets probeTimeout, and at most
// maxProbes run at once, so unreachable hosts delay a round by about one
// timeout.
const (
	probeTimeout = 3 * time.Second
	maxProbes    = 8
)

// Prober checks that a host answers over the tunnel.
type Prober interface {
	Probe(ctx context.Context, h *fsm.Host) error
}

// Node is what the reconciler needs of its core node. ClusterNode adapts
// the raft node; tests use a node in memory.
type Node interface {
	IsLeader() bool
	// State is the replicated state as this node applied it.
	State() *fsm.State
	// Decide builds a command from the leader's state and commits it; see
	// cluster.Node.Decide. cluster.ErrNotLeader on a follower.
	Decide(ctx context.Context, requestID string, build cluster.Builder) (fsm.Result, error)
}

// ClusterNode gives the reconciler a raft node.
func ClusterNode(n *cluster.Node) Node { return clusterNode{n} }

type clusterNode struct{ *cluster.Node }

func (n clusterNode) State() *fsm.State { return n.FSM.State() }

// Config configures a Reconciler.
type Config struct {
	Node Node
	TTL  time.Duration // 0 = DefaultTTL
	// DrainTimeout bounds how long a decommissioned host keeps its
	// instances while their replacements start; 0 = DefaultDrainTimeout.
	DrainTimeout time.Duration
	Interval     time.Duration // 0 = 1s
	// RolloutTimeout bounds a release's start (0: DefaultRolloutTimeout);
	// DrainTime is how long replaced instances keep running unrouted (0:
	// DefaultDrainTime).
	RolloutTimeout time.Duration
	DrainTime      time.Duration
	Prober         Prober // nil: pending hosts are made Ready without a probe
	// Usage forecasts Backs' load for repair placements (nil: reservations).
	Usage  scheduler.Usage
	Logger *slog.Logger
	Now    func() time.Time
}

// Reconciler runs on every core node and acts while that node leads.
type Reconciler struct {
	cfg      Config
	mu       sync.Mutex
	lastSeen map[string]time.Time
	// heard is when each host last heartbeated to this node since it
	// became leader (lastSeen also holds the grace a new leader gives).
	heard     map[string]time.Time
	wasLeader bool

	// Heartbeats that change something are committed in groups: while one
	// group's plan is in raft, the next gathers (see commitHeartbeat).
	hbMu       sync.Mutex
	hbNext     *heartbeatGroup
	hbFlushing bool
}

// New returns a Reconciler.
func New(cfg Config) *Reconciler {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.RolloutTimeout == 0 {
		cfg.RolloutTimeout = DefaultRolloutTimeout
	}
	if cfg.DrainTime == 0 {
		cfg.DrainTime = DefaultDrainTime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, lastSeen: map[string]time.Time{}, heard: map[string]time.Time{}}
}

// DrainTime is how long instances without routes keep running before the
// reconciler removes them (Config.DrainTime or its default).
func (r *Reconciler) DrainTime() time.Duration { return r.cfg.DrainTime }

// Run ticks until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.Tick(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("reconcile", "err", err)
			}
		}
	}
}

// seen returns when a host last heartbeated; a host first seen by this
// leader gets a full TTL of grace.
func (r *Reconciler) seen(id string, now time.Time) time.Time {
	t, ok := r.lastSeen[id]
	if !ok {
		r.lastSeen[id] = now
		return now
	}
	return t
}

// Tick runs one round on the leader.
func (r *Reconciler) Tick(ctx context.Context) error {
	node := r.cfg.Node
	if !node.IsLeader() {
		r.mu.Lock()
		r.wasLeader = false
		r.mu.Unlock()
		return nil
	}
	now := r.cfg.Now()
	r.mu.Lock()
	r.leadingLocked()
	r.mu.Unlock()

	st := node.State()
	// 1. Probe pending hosts, a few at a time, so unreachable ones do not
	// delay the heartbeat checks below by more than one probe timeout.
	var pending []*fsm.Host
	for _, h := range st.SortedHosts() {
		if h.Status == fsm.HostPending {
			pending = append(pending, h)
		}
	}
	reachable := make([]bool, len(pending))
	if r.cfg.Prober != nil {
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxProbes)
		for i, h := range pending {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				pctx, cancel := context.WithTimeout(ctx, probeTimeout)
				defer cancel()
				if err := r.cfg.Prober.Probe(pctx, h); err != nil {
					r.cfg.Logger.Info("host not reachable over the tunnel yet", "host", h.Name, "err", err)
					return
				}
				reachable[i] = true
			}()
		}
		wg.Wait()
	} else {
		for i := range reachable {
			reachable[i] = true
		}
	}
	for i, h := range pending {
		if !reachable[i] {
			continue
		}
		id := h.ID
		if _, err := node.Decide(ctx, "", func(st *fsm.State, now time.Time) (*fsm.Command, error) {
			if cur := st.Hosts[id]; cur == nil || cur.Status != fsm.HostPending {
				return nil, nil
			}
			return &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: id, Status: fsm.HostReady}}}}, nil
		}); err != nil {
			return fmt.Errorf("mark %s ready: %w", h.Name, err)
		}
		r.mu.Lock()
		r.lastSeen[id] = now
		r.mu.Unlock()
		r.cfg.Logger.Info("host is ready", "host", h.Name, "tunnel_address", h.TunnelAddr)
	}

	// 2. Hosts that missed heartbeats go down; 3. repair what is not placed
	// on ready hosts. Both in one plan.
	res, err := node.Decide(ctx, "", func(st *fsm.State, _ time.Time) (*fsm.Command, error) {
		var expired []string
		r.mu.Lock()
		for _, h := range st.SortedHosts() {
			if h.Status == fsm.HostReady && now.Sub(r.seen(h.ID, now)) > r.cfg.TTL {
				expired = append(expired, h.ID)
			}
		}
		r.mu.Unlock()
		plan := scheduler.PlanRepair(st, expired, scheduler.NewInstanceID, scheduler.Measured(st, r.cfg.Usage)...)
		if plan.Empty() {
			return nil, nil
		}
		return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}, nil
	})
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if res.Err != nil {
		return fmt.Errorf("repair rejected: %w", res.Err)
	}

	// 4. Draining hosts whose replacements run (or whose time is up) leave.
	res, err = node.Decide(ctx, "", func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		plan := scheduler.PlanDrained(st, now, r.cfg.DrainTimeout)
		if plan.Empty() {
			return nil, nil
		}
		return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}, nil
	})
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if res.Err != nil {
		return fmt.Errorf("drain rejected: %w", res.Err)
	}

	// 5. Rollouts: promote healthy releases, fail broken ones, remove
	// drained instances.
	return r.rollouts(ctx)
}

// Heartbeat records a heartbeat of a host on the leader, brings a down host
// back, and commits instance states that changed.
func (r *Reconciler) Heartbeat(ctx context.Context, hostID string, reports []agentproto.InstanceReport) error {
	node := r.cfg.Node
	if !node.IsLeader() {
		return cluster.ErrNotLeader
	}
	st := node.State()
	h := st.Hosts[hostID]
	if h == nil {
		return &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no host %q", hostID)}
	}
	if h.Status == fsm.HostDecommissioned {
		return &fsm.Error{Code: fsm.CodeConflict, Message: "host is decommissioned"}
	}
	if err := (agentproto.HeartbeatRequest{Instances: reports}).Check(); err != nil {
		return &fsm.Error{Code: fsm.CodeInvalid, Message: err.Error()}
	}
	r.mu.Lock()
	r.leadingLocked()
	r.lastSeen[hostID] = r.cfg.Now()
	r.heard[hostID] = r.lastSeen[hostID]
	r.mu.Unlock()

	// Most heartbeats change nothing: answer those from the state at hand,
	// without queueing behind the writes that Decide serialises (at a few
	// thousand hosts that queue is most of the leader's work).
	if heartbeatPlan(st, hostID, reports).Empty() {
		return nil
	}
	return r.commitHeartbeat(ctx, hostID, reports)
}

// heartbeatGroup is the heartbeats waiting for one commit: each host's
// latest reports, and the outcome every one of them gets.
type heartbeatGroup struct {
	reports map[string][]agentproto.InstanceReport
	done    chan struct{}
	err     error
}

// heartbeatCommitTimeout bounds one group's commit.
const heartbeatCommitTimeout = 30 * time.Second

// commitHeartbeat commits what a heartbeat changes together with the
// other heartbeats that arrive while the previous group is being committed:
// one raft entry per group instead of one per host, so a thousand Backs
// reporting their new instances running cost a few commits, not a thousand
// serialised ones. It returns when the heartbeat's group is committed (or
// refused), as before.
func (r *Reconciler) commitHeartbeat(ctx context.Context, hostID string, reports []agentproto.InstanceReport) error {
	r.hbMu.Lock()
	g := r.hbNext
	if g == nil {
		g = &heartbeatGroup{reports: map[string][]agentproto.InstanceReport{}, done: make(chan struct{})}
		r.hbNext = g
	}
	// A later heartbeat of the same host says what holds now.
	g.reports[hostID] = reports
	if !r.hbFlushing {
		r.hbFlushing = true
		go r.flushHeartbeats()
	}
	r.hbMu.Unlock()
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushHeartbeats commits gathered groups one after the other until none
// is left.
func (r *Reconciler) flushHeartbeats() {
	for range 1 << 30 { // bounded; each round commits one group or ends
		r.hbMu.Lock()
		g := r.hbNext
		r.hbNext = nil
		if g == nil {
			r.hbFlushing = false
			r.hbMu.Unlock()
			return
		}
		r.hbMu.Unlock()
		g.err = r.commitGroup(g)
		close(g.done)
	}
}

func (r *Reconciler) commitGroup(g *heartbeatGroup) error {
	// Urgent: Backs wait on these, and Decide takes them before the
	// creates queued meanwhile.
	ctx, cancel := context.WithTimeout(cluster.Urgent(context.Background()), heartbeatCommitTimeout)
	defer cancel()
	hosts := make([]string, 0, len(g.reports))
	for id := range g.reports {
		hosts = append(hosts, id)
	}
	sort.Strings(hosts)
	res, err := r.cfg.Node.Decide(ctx, "", func(st *fsm.State, _ time.Time) (*fsm.Command, error) {
		plan := &fsm.Plan{}
		for _, id := range hosts {
			p := heartbeatPlan(st, id, g.reports[id])
			if p.Empty() {
				continue
			}
			plan.Hosts = append(plan.Hosts, p.Hosts...)
			plan.Update = append(plan.Update, p.Update...)
		}
		if plan.Empty() {
			return nil, nil
		}
		return &fsm.Command{Type: fsm.CmdPlan, Plan: plan}, nil
	})
	if err != nil {
		return err
	}
	return res.Err
}

// LastHeartbeat returns when the host last heartbeated to this node while
// it leads; false when it has not since this node became leader, or when
// this node does not lead (the times are kept in memory by the leader only).
func (r *Reconciler) LastHeartbeat(hostID string) (time.Time, bool) {
	if !r.cfg.Node.IsLeader() {
		return time.Time{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leadingLocked()
	t, ok := r.heard[hostID]
	return t, ok
}

// leadingLocked starts a term on a node that found itself leading: nobody
// heartbeated to it yet, so every host gets a TTL of grace. Tick, Heartbeat
// and LastHeartbeat each call it, since any of them may see the new term
// first; a heartbeat arriving before the term's first round must count.
func (r *Reconciler) leadingLocked() {
	if !r.wasLeader {
		r.lastSeen = map[string]time.Time{}
		r.heard = map[string]time.Time{}
		r.wasLeader = true
	}
}

// heartbeatPlan is what a heartbeat changes in st: a down host comes back,
// and instance states its Back reports differently; an empty plan when
// nothing.
func heartbeatPlan(st *fsm.State, hostID string, reports []agentproto.InstanceReport) *fsm.Plan {
	h := st.Hosts[hostID]
	if h == nil {
		return nil
	}
	plan := &fsm.Plan{}
	if h.Status == fsm.HostDown {
		plan.Hosts = []fsm.HostStatusChange{{HostID: hostID, Status: fsm.HostReady}}
	}
	sorted := append([]agentproto.InstanceReport(nil), reports...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	for _, u := range sorted {
		in := st.Instances[u.ID]
		if in == nil || in.HostID != hostID || in.State == fsm.InstanceLost || in.State == fsm.InstanceDraining {
			continue // not this host's, moved away, or replaced by a newer release
		}
		if in.State != u.State || in.Message != u.Message {
			plan.Update = append(plan.Update, fsm.InstanceUpdate{ID: u.ID, State: u.State, Message: u.Message})
		}
	}
	return plan
}
