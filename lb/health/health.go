// Package health reproduces NGINX's passive health accounting for one
// backend (an upstream peer in ngx_http_upstream_round_robin.c): the fails /
// accessed / checked triple, fail_timeout exclusion and the single probe
// request that may bring a backend back.
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
// MaxFails 0 disables accounting: the backend is never skipped.
type Params struct {
	MaxFails    int
	FailTimeout time.Duration
}

// State is the health state of one backend. Safe for concurrent use; the
// common healthy case costs one atomic load.
type State struct {
	params Params

	// failing mirrors fails > 0 so healthy backends are chosen without locking.
	failing atomic.Bool

	mu       sync.Mutex
	fails    int
	accessed time.Duration // time of the last failure
	checked  time.Duration // time of the last failure or of the last probe's start
}

// NewState returns a healthy backend.
func NewState(p Params) *State { return &State{params: p} }

// Params returns the backend's parameters.
func (s *State) Params() Params { return s.params }

// Acquire is NGINX's selection test. It reports whether the backend may take a
// request at now and whether that request is the probe that ends a
// fail_timeout window. Choosing a backend whose window has expired moves
// `checked` to now, so every other caller keeps skipping it until the probe
// finishes or another fail_timeout passes.
func (s *State) Acquire(now time.Duration) (ok, probe bool) {
	if !s.failing.Load() {
		return true, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.params.MaxFails > 0 && s.fails >= s.params.MaxFails && now-s.checked <= s.params.FailTimeout {
		return false, false
	}
	if now-s.checked > s.params.FailTimeout {
		s.checked = now
		probe = s.params.MaxFails > 0 && s.fails >= s.params.MaxFails
	}
	return true, probe
}

// Fail records an unsuccessful attempt. It reports whether this failure takes
// the backend out (fails reached max_fails), which is also true when a probe fails.
func (s *State) Fail(now time.Duration) (markedDown bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails++
	s.accessed = now
	s.checked = now
	s.failing.Store(true)
	return s.params.MaxFails > 0 && s.fails >= s.params.MaxFails
}

// Succeed records a successful attempt. As in NGINX the failure count is
// cleared only when the backend was chosen after the last failure's window
// (accessed < checked). It reports whether the backend was down and is now live.
func (s *State) Succeed() (recovered bool) {
	if !s.failing.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accessed < s.checked {
		recovered = s.params.MaxFails > 0 && s.fails >= s.params.MaxFails
		s.fails = 0
		s.failing.Store(false)
	}
	return recovered
}

// Down reports whether the backend is currently excluded from selection.
func (s *State) Down(now time.Duration) bool {
	if !s.failing.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.params.MaxFails > 0 && s.fails >= s.params.MaxFails && now-s.checked <= s.params.FailTimeout
}

// Fails returns the current failure count.
func (s *State) Fails() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fails
}
