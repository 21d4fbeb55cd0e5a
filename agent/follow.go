package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"potluck/agentproto"
	"potluck/internal/jsonhttp"
)

const stateFile = "desired.json"

// ErrDecommissioned is returned by Follow once the core says this host was
// decommissioned: its work is over and its key no longer opens anything.
var ErrDecommissioned = errors.New("this host was decommissioned by the operator")

// ExitDecommissioned is the exit status of an agent whose host was
// decommissioned, so a supervisor can tell it from a failure and not restart
// it (systemd: RestartPreventExitStatus=3).
const ExitDecommissioned = 3

// Apply receives each new desired state. It is called from one goroutine,
// never concurrently.
type Apply func(ctx context.Context, d *agentproto.DesiredState) error

// Follow applies the last saved desired state at once (so a host restarted
// while the core is away serves what it served), then follows the core with
// blocking queries until ctx ends, applying each new state. Errors reaching
// the core are retried with backoff against the next core node. When the
// core says the host was decommissioned, Follow applies an empty state
// and returns ErrDecommissioned.
func (a *Agent) Follow(ctx context.Context, apply Apply) error {
	saverCtx, stopSaver := context.WithCancel(context.WithoutCancel(ctx))
	saverDone := make(chan struct{})
	go func() { defer close(saverDone); a.saveEndpoints(saverCtx) }()
	defer func() { stopSaver(); <-saverDone }()
	var index uint64
	var saved agentproto.DesiredState
	if err := readJSON(filepath.Join(a.cfg.DataDir, stateFile), &saved); err == nil {
		a.log.Info("applying the last known desired state", "index", saved.Index)
		a.applyState(ctx, &saved, apply)
	}
	backoff, failedInRow := time.Second, 0
	for ctx.Err() == nil {
		d, err := a.fetchState(ctx, index)
		if jsonhttp.StatusOf(err) == http.StatusGone {
			a.log.Warn("the core decommissioned this host; standing down")
			empty := agentproto.Empty()
			if err := writeJSON(filepath.Join(a.cfg.DataDir, stateFile), empty); err != nil {
				a.log.Warn("could not save desired state", "err", err)
			}
			a.applyState(ctx, empty, apply) // drops every tunnel but the core nodes'
			return ErrDecommissioned
		}
		if errors.Is(err, errCoreMoved) {
			continue // the heartbeats found the node dead and moved on
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			a.stats.stateFailures.Inc()
			a.cores.next()
			// Try every core node at once; back off only when all failed.
			if failedInRow++; failedInRow < a.cores.count() {
				continue
			}
			a.log.Warn("no core node answers; keeping the last desired state", "err", err, "retry_in", backoff)
			failedInRow = 0
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff, failedInRow = time.Second, 0
		a.stats.stateFetches.Inc()
		if d.Index == index && index != 0 {
			continue // the wait timed out with nothing new
		}
		index = d.Index
		if err := writeJSON(filepath.Join(a.cfg.DataDir, stateFile), d); err != nil {
			a.log.Warn("could not save desired state", "err", err)
		}
		a.applyState(ctx, d, apply)
	}
	return ctx.Err()
}

func (a *Agent) applyState(ctx context.Context, d *agentproto.DesiredState, apply Apply) {
	a.stats.appliedIndex.Store(d.Index)
	a.refreshCores(d)
	if err := a.node.SetPeers(a.peers(d)); err != nil {
		a.log.Error("mesh peers not applied", "err", err)
	}
	if err := apply(ctx, d); err != nil {
		a.log.Error("desired state not fully applied", "index", d.Index, "err", err)
	}
}

// refreshCores adopts the core nodes a desired state lists: nodes that
// joined after this host registered, or left, are known from then on (and
// saved with the identity for the next start).
func (a *Agent) refreshCores(d *agentproto.DesiredState) {
	var cores []agentproto.CorePeer
	for _, p := range d.Peers {
		if p.Role == agentproto.RoleCore && p.AgentURL != "" {
			cores = append(cores, p.CorePeer())
		}
	}
	if len(cores) == 0 {
		return // an empty state (standing down) or an older core: keep what we know
	}
	if id, changed := a.cores.replace(cores); changed {
		a.log.Info("core nodes updated", "count", len(cores))
		if err := saveIdentity(a.cfg.DataDir, id); err != nil {
			a.log.Warn("could not save identity", "err", err)
		}
	}
}

// errCoreMoved ends a blocking query whose core node was given up (by the
// heartbeats) while it waited.
var errCoreMoved = errors.New("the core node in use was given up")

// fetchState asks the core node in use for the desired state after index.
// A node that dies mid-query never answers and, over the tunnel, never
// resets the connection either: the query ends when the heartbeats give the
// node up, or at the latest PollWait+15 s.
func (a *Agent) fetchState(ctx context.Context, index uint64) (*agentproto.DesiredState, error) {
	base, moved := a.cores.inUse()
	url := fmt.Sprintf("%s%s?index=%d&wait=%s", base, agentproto.PathState, index, a.cfg.PollWait)
	ctx, cancel := context.WithTimeoutCause(ctx, a.cfg.PollWait+15*time.Second, errors.New("no answer within the poll wait"))
	defer cancel()
	ctx, cancelMoved := context.WithCancelCause(ctx)
	defer cancelMoved(nil)
	go func() {
		select {
		case <-moved:
			cancelMoved(errCoreMoved)
		case <-ctx.Done():
		}
	}()
	var d agentproto.DesiredState
	if err := jsonhttp.Do(ctx, a.client, jsonhttp.Request{Method: http.MethodGet, URL: url}, &d, maxReply); err != nil {
		if errors.Is(context.Cause(ctx), errCoreMoved) {
			return nil, errCoreMoved
		}
		return nil, err
	}
	return &d, nil
}
