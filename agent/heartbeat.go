package agent

import (
	"context"
	"fmt"
	"time"

	"potluck/agentproto"
)

// Heartbeat reports the host alive with its instances' states, trying each
// core node once.
func (a *Agent) Heartbeat(ctx context.Context, reports []agentproto.InstanceReport) error {
	if reports == nil {
		reports = []agentproto.InstanceReport{}
	}
	if err := a.post(ctx, agentproto.PathHeartbeat, agentproto.HeartbeatRequest{Instances: reports}); err != nil {
		a.stats.heartbeatFailures.Inc()
		return fmt.Errorf("heartbeat: %w", err)
	}
	a.stats.heartbeats.Inc()
	return nil
}

// Heartbeats reports to the core every interval, with reports() as the
// instances' states (nil for a Front), until ctx ends.
func (a *Agent) Heartbeats(ctx context.Context, interval time.Duration, reports func() []agentproto.InstanceReport) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var r []agentproto.InstanceReport
		if reports != nil {
			r = reports()
		}
		if err := a.Heartbeat(ctx, r); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat not delivered", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
