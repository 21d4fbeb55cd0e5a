package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"potluck/agentproto"
	"potluck/internal/jsonhttp"
)

// heartbeatTimeout bounds one heartbeat to one core node.
const heartbeatTimeout = 5 * time.Second

// Heartbeat reports the host alive with its instances' states, trying each
// core node once.
func (a *Agent) Heartbeat(ctx context.Context, reports []agentproto.InstanceReport) error {
	if reports == nil {
		reports = []agentproto.InstanceReport{}
	}
	body := agentproto.HeartbeatRequest{Instances: reports}
	var errs []error
	for range a.cores.count() {
		hctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
		req := jsonhttp.Request{Method: http.MethodPost, URL: a.cores.agentURL() + agentproto.PathHeartbeat, Body: body}
		err := jsonhttp.Do(hctx, a.client, req, nil, maxReply)
		cancel()
		if err == nil {
			a.stats.heartbeats.Inc()
			return nil
		}
		errs = append(errs, err)
		a.cores.next()
	}
	a.stats.heartbeatFailures.Inc()
	return fmt.Errorf("heartbeat: %w", errors.Join(errs...))
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
