package lb

import (
	"potluck/lb/health"
)

// BackendUnreachable tells the proxy that the transport knows addr cannot
// be reached any more (e.g. the mesh peer behind it went silent), before
// any request times out on it. Every backend with that address, in every
// route, is taken out for its fail_timeout at once, as if it had failed
// max_fails times, and its connections are closed and its dials under way
// cancelled, so that the requests in flight to it fail now: idempotent ones
// are retried on another backend, others get 502, instead of all waiting
// for the read timeout. After fail_timeout one request probes it, as after
// any failure; BackendReachable brings it back sooner, and calling
// BackendUnreachable again while it is still gone restarts the window.
//
// addr is a backend's host:port, or a host alone for every port of it
// (all the backends behind one mesh peer). It returns how many backends it
// matched. Safe to call from any goroutine, as often as the transport
// reports; the change is logged once.
func (p *Proxy) BackendUnreachable(addr string) int {
	now := p.opts.Clock.Now()
	matched, wentDown, aborted := 0, 0, 0
	for _, rt := range p.table.Load().routes {
		for _, b := range rt.backends {
			if !b.matches(addr) {
				continue
			}
			matched++
			// A single backend is never taken out (every request tries it),
			// but its requests in flight still fail fast.
			if !rt.single {
				if ev := b.health.TakeOut(now); ev.Change == health.WentDown {
					wentDown++
					b.m.markDowns.Inc()
					b.downSince.Store(int64(now))
				}
			}
			aborted += b.abort()
		}
	}
	p.draining.Range(func(k, _ any) bool {
		if b := k.(*backendState); b.matches(addr) {
			aborted += b.abort() // removed from the table: nothing to mark
		}
		return true
	})
	if wentDown > 0 || aborted > 0 {
		p.log.Warn("backend unreachable: marked down, its connections closed", "addr", addr,
			"backends", matched, "marked_down", wentDown, "connections_closed", aborted)
	}
	return matched
}

// BackendReachable tells the proxy that addr answers again (the mesh peer is
// back): its backends are live at once instead of after a fail_timeout
// probe. addr is as for BackendUnreachable; it returns how many backends it
// matched.
func (p *Proxy) BackendReachable(addr string) int {
	matched := 0
	for _, rt := range p.table.Load().routes {
		for _, b := range rt.backends {
			if !b.matches(addr) {
				continue
			}
			matched++
			if ev := b.health.Restore(); ev.Change == health.Recovered {
				p.recovered(rt, b, ev, "reported reachable")
			}
		}
	}
	return matched
}
