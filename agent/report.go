package agent

import (
	"context"
	"fmt"
	"time"

	"potluck/agentproto"
)

// DefaultMetricsInterval is how often agents report what they measured
// (the leader keeps one-minute points, so a few reports fill each).
const DefaultMetricsInterval = 15 * time.Second

// ReportMetrics posts one metrics report, trying each core node once.
func (a *Agent) ReportMetrics(ctx context.Context, m agentproto.MetricsReport) error {
	if err := a.post(ctx, agentproto.PathMetrics, m); err != nil {
		return fmt.Errorf("metrics report: %w", err)
	}
	return nil
}

// ReportMetricsEvery calls collect every interval and posts what it returns
// (nothing when it returns nil), until ctx ends. A report the core did not
// take is dropped: the next one measures its own interval, and the
// autoscaler reads a missing point as no data, not as no load. Failures are
// logged when they start and when they end, not for every report.
func (a *Agent) ReportMetricsEvery(ctx context.Context, interval time.Duration, collect func(ctx context.Context) *agentproto.MetricsReport) {
	t := time.NewTicker(interval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := collect(ctx)
		if m == nil {
			continue
		}
		err := a.ReportMetrics(ctx, *m)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			failing = true
			a.log.Warn("metrics reports not delivered", "err", err)
		case err == nil && failing:
			failing = false
			a.log.Info("metrics reports delivered again")
		}
	}
}
