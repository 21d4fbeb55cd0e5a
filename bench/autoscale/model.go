package autoscale

import (
	"fmt"
	"math"
	"time"

	as "potluck/core/autoscale"
)

// Model is the simulated installation: how much an instance serves, how
// request time grows with load, which users leave, what things cost and how
// long scaling takes. Every number is our choice (the seed's
// CpuRequestsMapping.dll, its "hypercube" and its loss curve are
// unpublished); docs/autoscaling.md explains them.
type Model struct {
	Ladder as.Ladder
	// ServiceTime is the CPU one request needs on one ladder unit (one
	// core): a unit serves 60 s / ServiceTime requests per minute at 100 %.
	ServiceTime time.Duration
	// Timeout bounds the queue: requests that would wait longer are
	// dropped (and their users lost).
	Timeout time.Duration
	// LossStart and LossFull shape the chance that a user leaves after a
	// request that took T: 0 up to LossStart, rising linearly to 1 at
	// LossFull.
	LossStart, LossFull time.Duration
	// RequestsPerUser converts requests into users.
	RequestsPerUser float64
	// LostUserPrice is the seed's $0.00027.
	LostUserPrice float64
	// MemoryBase is an idle instance's memory use (share of its limit);
	// each request in flight adds MemoryPerRequestMB.
	MemoryBase         float64
	MemoryPerRequestMB float64
	// StartDelay is how long a new instance takes to serve; ResizeDelay
	// how long a change of size takes (a rolling replacement: the old
	// instances serve, and are paid for, until the new ones are ready).
	StartDelay, ResizeDelay time.Duration
}

// DefaultModel is the "seed" regime: VM-like delays (5 min to start an
// instance, 10 to resize, within the seed's 15-minute maximum).
func DefaultModel() Model {
	return Model{
		Ladder:             as.DefaultLadder(),
		ServiceTime:        200 * time.Millisecond,
		Timeout:            30 * time.Second,
		LossStart:          2 * time.Second,
		LossFull:           10 * time.Second,
		RequestsPerUser:    20,
		LostUserPrice:      0.00027,
		MemoryBase:         0.35,
		MemoryPerRequestMB: 4,
		StartDelay:         5 * time.Minute,
		ResizeDelay:        10 * time.Minute,
	}
}

// PotluckModel is the same installation with Potluck's delays: a container
// starts in about a minute (image present, health check passed), and a
// resize is a rolling redeploy of about two.
func PotluckModel() Model {
	m := DefaultModel()
	m.StartDelay, m.ResizeDelay = time.Minute, 2*time.Minute
	return m
}

// Validate reports a model that cannot be simulated.
func (m Model) Validate() error {
	if err := m.Ladder.Validate(); err != nil {
		return err
	}
	switch {
	case m.ServiceTime <= 0 || m.Timeout <= m.ServiceTime:
		return fmt.Errorf("model: service time %v / timeout %v: need 0 < service < timeout", m.ServiceTime, m.Timeout)
	case m.LossStart < 0 || m.LossFull <= m.LossStart:
		return fmt.Errorf("model: loss curve %v..%v: need 0 <= start < full", m.LossStart, m.LossFull)
	case m.RequestsPerUser <= 0 || m.LostUserPrice < 0:
		return fmt.Errorf("model: requests per user %v / lost user price %v", m.RequestsPerUser, m.LostUserPrice)
	case m.MemoryBase < 0 || m.MemoryBase >= 1 || m.MemoryPerRequestMB < 0:
		return fmt.Errorf("model: memory base %v / per request %v MB", m.MemoryBase, m.MemoryPerRequestMB)
	case m.StartDelay < 0 || m.ResizeDelay < 0:
		return fmt.Errorf("model: delays %v / %v must not be negative", m.StartDelay, m.ResizeDelay)
	}
	return nil
}

// PerUnit is what one ladder unit serves per minute at 100 % CPU.
func (m Model) PerUnit() float64 { return float64(time.Minute) / float64(m.ServiceTime) }

// lossChance is the chance a user leaves after a request taking t.
func (m Model) lossChance(t time.Duration) float64 {
	return min(1, max(0, float64(t-m.LossStart)/float64(m.LossFull-m.LossStart)))
}

// erlangC is the probability that a request waits in an M/M/c queue with c
// servers and offered load a = λ/μ (< c).
func erlangC(c int, a float64) float64 {
	b := 1.0 // Erlang B by the stable recursion
	for k := 1; k <= c; k++ {
		b = a * b / (float64(k) + a*b)
	}
	rho := a / float64(c)
	return b / (1 - rho*(1-b))
}

// minute is one simulated minute's outcome.
type minute struct {
	cpu, memory float64
	reqTime     time.Duration
	lostUsers   float64
	backlog     float64
}

// serve runs one minute of demand lambda (requests) against units of
// capacity on count ready instances of memory memMB each, with backlog
// requests still queued from the minute before. Within a minute the queue
// is M/M/c (c = units, service time ServiceTime): mean wait
// ErlangC·S/(c(1−ρ)). Across minutes a fluid backlog carries overload:
// what capacity cannot serve waits, and what would wait longer than
// Timeout is dropped.
func (m Model) serve(lambda, backlog, units float64, count, memMB int) minute {
	if units <= 0 || count == 0 {
		return minute{cpu: 1, memory: 1, reqTime: m.Timeout, lostUsers: lambda / m.RequestsPerUser}
	}
	k := units * m.PerUnit() // requests per minute
	avail := backlog + lambda
	served := min(avail, k)
	queued := avail - served
	limit := k * m.Timeout.Minutes()
	dropped := max(0, queued-limit)
	queued -= dropped
	s := m.ServiceTime.Seconds()
	t := s
	if rho := lambda / k; rho < 1 {
		c := int(math.Round(units))
		t += erlangC(c, lambda/m.PerUnit()) * s / (float64(c) * (1 - rho))
	}
	t += (backlog + queued) / 2 / k * 60 // seconds the backlog adds
	rt := min(time.Duration(t*float64(time.Second)), m.Timeout)
	lost := min(lambda, lambda*m.lossChance(rt)+dropped)
	inFlight := lambda / 60 * rt.Seconds() // Little's law
	mem := min(1, m.MemoryBase+inFlight/float64(count)*m.MemoryPerRequestMB/float64(memMB))
	return minute{cpu: served / k, memory: mem, reqTime: rt, lostUsers: lost / m.RequestsPerUser, backlog: queued}
}
