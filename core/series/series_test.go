package series

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestStepsAggregateFrontsAndBacks(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	s := New(time.Minute, 0, c.now)
	bounds := []float64{10, 100}
	// Two Fronts in the same minute; their histograms add up.
	s.AddFront([]agentproto.RouteMetrics{{Installation: "shop", Requests: 60, Errors: 3, LatencyBoundsMS: bounds, LatencyCounts: []uint64{50, 10, 0}, LatencySumMS: 600}})
	c.add(10 * time.Second)
	s.AddFront([]agentproto.RouteMetrics{{Installation: "shop", Requests: 40, LatencyBoundsMS: bounds, LatencyCounts: []uint64{40, 0, 0}, LatencySumMS: 400}})
	// Two instances; one reported twice: each instance's mean, then the mean.
	s.AddBack([]agentproto.InstanceMetrics{{ID: "a", Installation: "shop", CPU: 0.2, Memory: 0.5}, {ID: "b", Installation: "shop", CPU: 0.8, Memory: 0.5}})
	s.AddBack([]agentproto.InstanceMetrics{{ID: "a", Installation: "shop", CPU: 0.4, Memory: 0.5}})
	require.Empty(t, s.Points("shop"), "the minute in progress is not a point yet")

	c.add(time.Minute)
	ps := s.Points("shop")
	require.Len(t, ps, 1)
	p := ps[0]
	require.Equal(t, time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC), p.At)
	require.Equal(t, 100.0, p.Requests)
	require.Equal(t, 3.0, p.Errors)
	require.Equal(t, 10.0, p.MeanMS)
	require.InDelta(t, 5.56, p.P50MS, 0.01, "rank 50 of 90 in the first bucket (0..10 ms)")
	require.InDelta(t, 55, p.P95MS, 0.01, "rank 95 is halfway through the second bucket (10..100 ms)")
	require.InDelta(t, (0.3+0.8)/2, p.CPU, 1e-9)
	require.Equal(t, 2, p.Instances)
	require.True(t, p.Fronts && p.Backs)
}

func TestSeriesAreBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := New(time.Second, 125, c.now)
	for i := range 300 {
		s.AddFront([]agentproto.RouteMetrics{{Installation: "x", Requests: uint64(i)}})
		c.add(time.Second)
	}
	ps := s.Points("x")
	require.Len(t, ps, 125)
	require.Equal(t, 299.0, ps[124].Requests, "the newest kept")
	require.Equal(t, 175.0, ps[0].Requests)

	s.Forget(func(string) bool { return false })
	require.Empty(t, s.Points("x"))
}

func TestQuantile(t *testing.T) {
	cases := []struct {
		name   string
		counts []uint64
		q      float64
		want   float64
	}{
		{"empty", []uint64{0, 0, 0}, 0.5, 0},
		{"all in the first bucket", []uint64{4, 0, 0}, 0.5, 5},
		{"above the last bound", []uint64{0, 0, 4}, 0.95, 100},
		{"second bucket", []uint64{0, 10, 0}, 0.95, 95.5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.InDelta(t, c.want, quantile([]float64{10, 100}, c.counts, c.q), 1e-9)
		})
	}
}

// TestShareIsTheRecentPeak: placement forecasts an installation's use by
// the peak of its last ShareWindow points that Backs reported.
func TestShareIsTheRecentPeak(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := New(time.Minute, 0, c.now)
	_, _, ok := s.Share("x")
	require.False(t, ok, "nothing measured")
	s.AddFront([]agentproto.RouteMetrics{{Installation: "x", Requests: 1}})
	c.add(time.Minute)
	_, _, ok = s.Share("x")
	require.False(t, ok, "a point without Back reports says nothing of use")

	// An old peak, then ShareWindow quieter minutes with one busier one.
	s.AddBack([]agentproto.InstanceMetrics{{ID: "a", Installation: "x", CPU: 0.9, Memory: 0.9}})
	c.add(time.Minute)
	for i := range ShareWindow {
		cpu, mem := 0.2, 0.3
		if i == 5 {
			cpu, mem = 0.6, 0.4
		}
		s.AddBack([]agentproto.InstanceMetrics{{ID: "a", Installation: "x", CPU: cpu, Memory: mem}})
		c.add(time.Minute)
	}
	cpu, mem, ok := s.Share("x")
	require.True(t, ok)
	require.InDelta(t, 0.6, cpu, 1e-9, "the 0.9 minute is older than the window")
	require.InDelta(t, 0.4, mem, 1e-9)
}
