// Package series keeps, on the leader and in memory only, a bounded time
// series per installation built from the agents' metrics reports: requests,
// 5xx answers and latency quantiles from the Fronts, mean CPU and memory of
// the instances from the Backs, one point per Step (a minute by default).
// It is the autoscaler's input and what GET /v1/installations/NAME/metrics
// shows. Nothing here is replicated: a new leader starts empty and fills
// from the next reports.
package series

import (
	"maps"
	"slices"
	"sync"
	"time"

	"potluck/agentproto"
)

// Defaults.
const (
	DefaultStep = time.Minute
	// DefaultKeep is how many points each installation keeps: the
	// forecast's 125 one-minute points and some to spare for the charts.
	DefaultKeep = 180
)

// Point is one step of an installation.
type Point struct {
	// At is the start of the step (the leader's clock).
	At time.Time `json:"at"`
	// Requests answered by all Fronts in the step, and those answered 5xx.
	Requests float64 `json:"requests"`
	Errors   float64 `json:"errors"`
	// Latency quantiles and mean of the step, from the Fronts' histograms
	// (upper bound of the bucket the quantile falls in, interpolated).
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	MeanMS float64 `json:"mean_ms"`
	// CPU and Memory are the mean over the reporting instances of their
	// use as a share of their limits; Instances is how many reported.
	CPU       float64 `json:"cpu"`
	Memory    float64 `json:"memory"`
	Instances int     `json:"instances"`
	// Fronts and Backs say whether any Front or Back reported in the step
	// (a point without them has no data on that side, which is not zero).
	Fronts bool `json:"fronts"`
	Backs  bool `json:"backs"`
}

// acc accumulates the current step of one installation.
type acc struct {
	at           time.Time
	requests     float64
	errors       float64
	boundsMS     []float64
	counts       []uint64
	sumMS        float64
	cpu, mem     map[string][]float64 // by instance: readings in the step
	fronts, back bool
}

type installation struct {
	points []Point // oldest first, at most keep
	cur    *acc
}

// Store holds every installation's series. Safe for concurrent use.
type Store struct {
	step time.Duration
	keep int
	now  func() time.Time

	mu   sync.Mutex
	inst map[string]*installation
}

// New returns a store with points of step (0: DefaultStep), keeping keep
// points per installation (0: DefaultKeep); now is its clock (nil:
// time.Now).
func New(step time.Duration, keep int, now func() time.Time) *Store {
	if step <= 0 {
		step = DefaultStep
	}
	if keep <= 0 {
		keep = DefaultKeep
	}
	if now == nil {
		now = time.Now
	}
	return &Store{step: step, keep: keep, now: now, inst: map[string]*installation{}}
}

// Step is the length of one point.
func (s *Store) Step() time.Duration { return s.step }

// current returns the accumulator of name's step now, closing older ones.
func (s *Store) current(name string, now time.Time) *acc {
	in := s.inst[name]
	if in == nil {
		in = &installation{}
		s.inst[name] = in
	}
	at := now.Truncate(s.step)
	s.close(in, at)
	if in.cur == nil {
		in.cur = &acc{at: at, cpu: map[string][]float64{}, mem: map[string][]float64{}}
	}
	return in.cur
}

// close turns the accumulator into a point if its step ended before at.
func (s *Store) close(in *installation, at time.Time) {
	if in.cur == nil || !in.cur.at.Before(at) {
		return
	}
	in.points = append(in.points, in.cur.point())
	if len(in.points) > s.keep {
		in.points = append([]Point(nil), in.points[len(in.points)-s.keep:]...)
	}
	in.cur = nil
}

// AddFront records a Front's report. The caller has checked that the Front
// serves each installation named (the leader's agent API does).
func (s *Store) AddFront(routes []agentproto.RouteMetrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, r := range routes {
		a := s.current(r.Installation, now)
		a.fronts = true
		a.requests += float64(r.Requests)
		a.errors += float64(r.Errors)
		a.sumMS += r.LatencySumMS
		if len(r.LatencyCounts) == 0 {
			continue
		}
		if a.counts == nil || !slices.Equal(a.boundsMS, r.LatencyBoundsMS) {
			// Fronts of one release share bounds; on a mismatch the
			// latest report's histogram is kept alone.
			a.boundsMS = append([]float64(nil), r.LatencyBoundsMS...)
			a.counts = make([]uint64, len(r.LatencyCounts))
		}
		for i, c := range r.LatencyCounts {
			a.counts[i] += c
		}
	}
}

// AddBack records a Back's report of its instances.
func (s *Store) AddBack(instances []agentproto.InstanceMetrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for _, m := range instances {
		a := s.current(m.Installation, now)
		a.back = true
		a.cpu[m.ID] = append(a.cpu[m.ID], m.CPU)
		a.mem[m.ID] = append(a.mem[m.ID], m.Memory)
	}
}

// Points returns name's finished points, oldest first (the step in
// progress is not among them).
func (s *Store) Points(name string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.inst[name]
	if in == nil {
		return []Point{}
	}
	s.close(in, s.now().Truncate(s.step))
	return append([]Point{}, in.points...)
}

// Forget drops installations not in keep (deleted ones).
func (s *Store) Forget(keep func(name string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.inst {
		if !keep(name) {
			delete(s.inst, name)
		}
	}
}

// Reset drops everything (this node stopped leading: its series would be
// stale by the time it leads again).
func (s *Store) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inst = map[string]*installation{}
}

func (a *acc) point() Point {
	p := Point{At: a.at, Requests: a.requests, Errors: a.errors, Fronts: a.fronts, Backs: a.back, Instances: len(a.cpu)}
	if a.requests > 0 {
		p.MeanMS = a.sumMS / a.requests
	}
	p.P50MS = quantile(a.boundsMS, a.counts, 0.50)
	p.P95MS = quantile(a.boundsMS, a.counts, 0.95)
	p.CPU, p.Memory = meanOfMeans(a.cpu), meanOfMeans(a.mem)
	return p
}

// meanOfMeans averages each instance's readings, then the instances.
func meanOfMeans(by map[string][]float64) float64 {
	if len(by) == 0 {
		return 0
	}
	ids := slices.Sorted(maps.Keys(by)) // a fixed order: the same sum every time
	var total float64
	for _, id := range ids {
		var sum float64
		for _, v := range by[id] {
			sum += v
		}
		total += sum / float64(len(by[id]))
	}
	return total / float64(len(ids))
}

// quantile estimates the q-quantile of a histogram (counts per bucket, the
// last above the last bound) by linear interpolation within the bucket it
// falls in; above the last bound it answers the last bound.
func quantile(boundsMS []float64, counts []uint64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 || len(counts) != len(boundsMS)+1 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			if i == len(boundsMS) {
				return boundsMS[len(boundsMS)-1]
			}
			lo := 0.0
			if i > 0 {
				lo = boundsMS[i-1]
			}
			return lo + (boundsMS[i]-lo)*(rank-cum)/float64(c)
		}
		cum += float64(c)
	}
	return boundsMS[len(boundsMS)-1]
}

// ShareWindow is how many recent points Share looks at: the autoscaler's
// forecast horizon (15 one-minute points).
const ShareWindow = 15

// Share is the placement forecast of an installation's use: the peak, over
// its last ShareWindow points with Back reports, of its instances' mean CPU
// and memory as shares of their limits; ok is false before any such point.
// A peak, not a mean: placement must leave room for the busy minutes.
func (s *Store) Share(name string) (cpu, memory float64, ok bool) {
	if s == nil {
		return 0, 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.inst[name]
	if in == nil {
		return 0, 0, false
	}
	s.close(in, s.now().Truncate(s.step))
	for i, seen := len(in.points)-1, 0; i >= 0 && seen < ShareWindow; i-- {
		p := in.points[i]
		if !p.Backs {
			continue
		}
		seen++
		cpu, memory, ok = max(cpu, p.CPU), max(memory, p.Memory), true
	}
	return cpu, memory, ok
}
