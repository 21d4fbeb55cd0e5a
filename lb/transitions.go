package lb

import (
	"time"

	"potluck/lb/health"
)

// Health transitions are logged once each, with counts, never per attempt:
// a backend that vanishes under load fails every request in flight to it,
// and each of those is a metric, not a log line.

// succeeded records an attempt b answered.
func (p *Proxy) succeeded(rt *routeState, b *backendState) {
	if ev := b.health.Succeed(); ev.Change == health.Recovered {
		p.recovered(rt, b, ev, "a probe succeeded")
	}
	if rt.m.outage.Load() && rt.m.outage.CompareAndSwap(true, false) {
		p.log.Info("route has a live backend again", "route", rt.name,
			"answered_no_live_backend", rt.m.noLive.Load()-rt.m.outageMark.Load())
	}
}

// failed records a failed attempt on b; it may take b out for fail_timeout.
func (p *Proxy) failed(rt *routeState, b *backendState, o outcome, err error, now time.Duration) {
	b.m.failures.Inc()
	if rt.single || !countsAgainstHealth(err) {
		p.log.Debug("backend attempt failed", "route", rt.name, "backend", b.spec.Addr, "err", err)
		return
	}
	ev := b.health.Fail(now)
	switch ev.Change {
	case health.WentDown:
		p.wentDown(rt, b, ev, now, describe(o), err)
	case health.ProbeFailed:
		b.m.markDowns.Inc()
		p.log.Debug("backend still down: its probe failed", "route", rt.name, "backend", b.spec.Addr,
			"err", err, "failures", ev.Fails)
	default:
		p.log.Debug("backend attempt failed", "route", rt.name, "backend", b.spec.Addr, "err", err)
	}
}

func (p *Proxy) wentDown(rt *routeState, b *backendState, ev health.Event, now time.Duration, reason string, err error) {
	b.m.markDowns.Inc()
	b.downSince.Store(int64(now))
	p.log.Warn("backend marked down", "route", rt.name, "backend", b.spec.Addr,
		"reason", reason, "err", err, "failures", ev.Fails, "for", b.health.Params().FailTimeout)
}

func (p *Proxy) recovered(rt *routeState, b *backendState, ev health.Event, how string) {
	b.m.recoveries.Inc()
	downFor := p.opts.Clock.Now() - time.Duration(b.downSince.Load())
	p.log.Info("backend recovered", "route", rt.name, "backend", b.spec.Addr, "how", how,
		"down_for", downFor, "failures_while_down", ev.Fails)
}

// noLiveBackend counts a request answered 502 because every backend of rt
// was out, and logs the first of an outage.
func (p *Proxy) noLiveBackend(rt *routeState) {
	rt.m.noLive.Inc()
	if !rt.m.outage.Load() && rt.m.outage.CompareAndSwap(false, true) {
		rt.m.outageMark.Store(rt.m.noLive.Load() - 1)
		p.log.Warn("no live backend: the route answers 502 until one is back", "route", rt.name)
	}
}
