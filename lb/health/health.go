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
	probing  bool          // a probe was handed out and has not reported yet
}

// Change is what a recorded attempt did to the state, so that callers log
// and count transitions, not attempts.
type Change uint8

const (
	// NoChange: still live, or still down (a request sent before the
	// backend went down failed too).
	NoChange Change = iota
	// WentDown: fails reached max_fails; the backend is out for fail_timeout.
	WentDown
	// ProbeFailed: the probe after a fail_timeout failed; out for another.
	ProbeFailed
	// Recovered: the backend was down and is live again.
	Recovered
)

// Event is the outcome of recording an attempt.
type Event struct {
	Change Change
	// Fails counts the failures since the backend was last healthy, the
	// one recorded included; on Recovered, those that kept it down.
	Fails int
}

func (s *State) down() bool { return s.params.MaxFails > 0 && s.fails >= s.params.MaxFails }

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
	if s.down() && now-s.checked <= s.params.FailTimeout {
		return false, false
	}
	if now-s.checked > s.params.FailTimeout {
		s.checked = now
		probe = s.down()
		s.probing = s.probing || probe
	}
	return true, probe
}

// Fail records an unsuccessful attempt. WentDown when it takes a live
// backend out (fails reached max_fails), ProbeFailed when it ends the
// probe of a down one, NoChange otherwise; every failure restarts the
// fail_timeout window, as in NGINX.
func (s *State) Fail(now time.Duration) Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasDown := s.down()
	s.fails++
	s.accessed = now
	s.checked = now
	s.failing.Store(true)
	ev := Event{Fails: s.fails}
	switch {
	case !wasDown && s.down():
		ev.Change = WentDown
	case wasDown && s.probing:
		ev.Change = ProbeFailed
		s.probing = false
	}
	return ev
}

// Succeed records a successful attempt. As in NGINX the failure count is
// cleared only when the backend was chosen after the last failure's window
// (accessed < checked). Recovered when the backend was down and is live
// again.
func (s *State) Succeed() Event {
	if !s.failing.Load() {
		return Event{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.accessed < s.checked {
		return s.clear()
	}
	return Event{}
}

// TakeOut takes the backend out for fail_timeout at once, as if it had
// failed max_fails times (the caller knows it is unreachable). WentDown
// unless it was down already. A backend with accounting off (max_fails 0)
// is never out.
func (s *State) TakeOut(now time.Duration) Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.params.MaxFails == 0 {
		return Event{}
	}
	wasDown := s.down()
	s.fails = max(s.fails+1, s.params.MaxFails)
	s.accessed = now
	s.checked = now
	s.probing = false
	s.failing.Store(true)
	ev := Event{Fails: s.fails}
	if !wasDown {
		ev.Change = WentDown
	}
	return ev
}

// Restore makes the backend live at once (the caller knows it is reachable
// again). Recovered if it was down.
func (s *State) Restore() Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clear()
}

// clear forgets the failures: Recovered if the backend was down. s.mu is
// held.
func (s *State) clear() Event {
	var ev Event
	if s.down() {
		ev = Event{Change: Recovered, Fails: s.fails}
	}
	s.fails = 0
	s.probing = false
	s.failing.Store(false)
	return ev
}

// Down reports whether the backend is currently excluded from selection.
func (s *State) Down(now time.Duration) bool {
	if !s.failing.Load() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down() && now-s.checked <= s.params.FailTimeout
}

// Fails returns the current failure count.
func (s *State) Fails() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fails
}
