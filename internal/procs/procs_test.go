package procs

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGovernor(t *testing.T) {
	cfg := Config{Max: 4, DownAfter: 3}.withDefaults()
	for _, tc := range []struct {
		name  string
		busy  []float64 // cores used, interval by interval, starting at Max
		work  []float64 // work per second in each interval; nil: none
		procs []int     // GOMAXPROCS after each
	}{
		{name: "idle goes to one P after DownAfter quiet intervals",
			busy: []float64{0.1, 0.2, 0.1, 0.1}, procs: []int{4, 4, 1, 1}},
		{name: "a busy interval restarts the count",
			busy: []float64{0.1, 0.1, 0.75, 0.1, 0.1, 0.1}, procs: []int{4, 4, 4, 4, 4, 1}},
		{name: "one P nearly saturated gets Max back",
			busy: []float64{0, 0, 0, 0.79, 0.8, 0.3}, procs: []int{4, 4, 1, 1, 4, 4}},
		{name: "a steady load between Down and Up stays where it is",
			busy: []float64{0.75, 0.75, 0.75, 0.75}, procs: []int{4, 4, 4, 4}},
		{name: "an idle process spinning at Max still goes down",
			busy: []float64{0.55, 0.6, 0.65}, procs: []int{4, 4, 1}},
		{name: "busy at Max stays",
			busy: []float64{1.7, 2.5, 1.1}, procs: []int{4, 4, 4}},
		{name: "a stream at one P gets Max though its CPU stays low",
			busy: []float64{0.1, 0.1, 0.1, 0.4, 0.5}, work: []float64{0, 0, 0, 80 << 20, 90 << 20}, procs: []int{4, 4, 1, 4, 4}},
		{name: "a stream at Max keeps it, then a trickle lets it down",
			busy: []float64{0.5, 0.5, 0.5, 0.3, 0.3, 0.3}, work: []float64{80 << 20, 80 << 20, 80 << 20, 2 << 20, 2 << 20, 2 << 20}, procs: []int{4, 4, 4, 4, 4, 1}},
		{name: "a trickle of work changes nothing",
			busy: []float64{0.1, 0.1, 0.1, 0.2}, work: []float64{3 << 20, 3 << 20, 3 << 20, 3 << 20}, procs: []int{4, 4, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := governor{cfg: cfg, procs: cfg.Max}
			got := make([]int, 0, len(tc.busy))
			for i, b := range tc.busy {
				var w float64
				if tc.work != nil {
					w = tc.work[i]
				}
				got = append(got, g.next(b, w))
			}
			require.Equal(t, tc.procs, got)
		})
	}
}

// TestRunAdaptsAndRestores: an idle process drops to one P, a loaded one
// gets Max back, and Max is restored when Run ends.
func TestRunAdaptsAndRestores(t *testing.T) {
	t.Setenv("GOMAXPROCS", "") // Run steps aside when the operator set it
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { Run(ctx, Config{Interval: 10 * time.Millisecond, Max: 2, DownAfter: 2}) })
	require.Eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 1 }, 20*time.Second, 5*time.Millisecond)

	// Keep one P busy until Run hands the process its second one.
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	require.Eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 2 }, 20*time.Second, 5*time.Millisecond)
	close(stop)
	cancel()
	wg.Wait()
	require.Equal(t, 2, runtime.GOMAXPROCS(0))
}

// TestRunGivesWorkEveryP: a process whose Work counter climbs fast gets Max
// while its CPU stays near zero.
func TestRunGivesWorkEveryP(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	var work atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		Run(ctx, Config{Interval: 10 * time.Millisecond, Max: 2, DownAfter: 2, Work: work.Load, UpWork: 1 << 20})
	})
	require.Eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 1 }, 20*time.Second, 5*time.Millisecond)
	stop := make(chan struct{})
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				work.Add(64 << 10) // 64 MiB/s at most, at next to no CPU
			}
		}
	})
	require.Eventually(t, func() bool { return runtime.GOMAXPROCS(0) == 2 }, 20*time.Second, 5*time.Millisecond)
	close(stop)
	cancel()
	wg.Wait()
}

func TestRunStepsAsideForTheOperator(t *testing.T) {
	t.Setenv("GOMAXPROCS", "2")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(2)
	done := make(chan struct{})
	go func() { Run(context.Background(), Config{Interval: time.Millisecond, Max: 2}); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return although GOMAXPROCS is set")
	}
	require.Equal(t, 2, runtime.GOMAXPROCS(0))
}
