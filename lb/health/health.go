// Package health reproduces NGINX's passive health accounting for one
// upstream peer (ngx_http_upstream_round_robin.c): the fails / accessed /
// checked triple, fail_timeout exclusion and the single probe request that
// may bring a peer back.
package health

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock returns a monotonic reading. Production uses MonotonicClock; tests
// pass a fake so fail_timeout windows can be stepped through exactly.
type Clock interface {
	Now() time.Duration
}

// MonotonicClock reads the process's monotonic clock.
type MonotonicClock struct{ origin time.Time }

// NewMonotonicClock starts a clock at zero.
func NewMonotonicClock() *MonotonicClock { return &MonotonicClock{origin: time.Now()} }

// Now returns the time elapsed since the clock was created.
func (c *MonotonicClock) Now() time.Duration { return time.Since(c.origin) }

// Params are NGINX's per-server max_fails and fail_timeout.
// MaxFails 0 disables accounting: the peer is never skipped.
type Params struct {
	MaxFails    int
	FailTimeout time.Duration
}

// Peer is the health state of one backend. Safe for concurrent use; the
// common healthy case costs one atomic load.
type Peer struct {
	params Params

	// failing mirrors fails > 0 so healthy peers are chosen without locking.
	failing atomic.Bool

	mu       sync.Mutex
	fails    int
	accessed time.Duration // time of the last failure
	checked  time.Duration // time of the last failure or of the last probe's start
}

// NewPeer returns a healthy peer.
func NewPeer(p Params) *Peer { return &Peer{params: p} }

// Params returns the peer's parameters.
func (p *Peer) Params() Params { return p.params }

// Acquire is NGINX's selection test. It reports whether the peer may take a
// request at now and whether that request is the probe that ends a
// fail_timeout window. Choosing a peer whose window has expired moves
// `checked` to now, so every other caller keeps skipping it until the probe
// finishes or another fail_timeout passes.
func (p *Peer) Acquire(now time.Duration) (ok, probe bool) {
	if !p.failing.Load() {
		return true, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.params.MaxFails > 0 && p.fails >= p.params.MaxFails && now-p.checked <= p.params.FailTimeout {
		return false, false
	}
	if now-p.checked > p.params.FailTimeout {
		p.checked = now
		probe = p.params.MaxFails > 0 && p.fails >= p.params.MaxFails
	}
	return true, probe
}

// Fail records an unsuccessful attempt. It reports whether this failure takes
// the peer out (fails reached max_fails), which is also true when a probe fails.
func (p *Peer) Fail(now time.Duration) (markedDown bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fails++
	p.accessed = now
	p.checked = now
	p.failing.Store(true)
	return p.params.MaxFails > 0 && p.fails >= p.params.MaxFails
}

// Succeed records a successful attempt. As in NGINX the failure count is
// cleared only when the peer was chosen after the last failure's window
// (accessed < checked). It reports whether the peer was down and is now live.
func (p *Peer) Succeed() (recovered bool) {
	if !p.failing.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.accessed < p.checked {
		recovered = p.params.MaxFails > 0 && p.fails >= p.params.MaxFails
		p.fails = 0
		p.failing.Store(false)
	}
	return recovered
}

// Down reports whether the peer is currently excluded from selection.
func (p *Peer) Down(now time.Duration) bool {
	if !p.failing.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.params.MaxFails > 0 && p.fails >= p.params.MaxFails && now-p.checked <= p.params.FailTimeout
}

// Fails returns the current failure count.
func (p *Peer) Fails() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fails
}
