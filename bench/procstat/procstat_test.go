package procstat

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Stat
		ok   bool
	}{
		{"plain", "42 (nginx) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 0 0", Stat{PPID: "1", Ticks: 10}, true},
		{"spaces and parens in the name", "43 (a (b) c) R 42 43 43 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 0 0", Stat{PPID: "42", Ticks: 11}, true},
		{"cut short", "44 (x) S 1 2", Stat{}, false},
		{"no name", "garbage", Stat{}, false},
		{"bad numbers", "45 (x) S 1 45 45 0 -1 0 0 0 0 0 u s 0 0 20 0 1 0 1 0 0", Stat{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseStat([]byte(tc.line))
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.want, got)
		})
	}
	self, err := os.ReadFile("/proc/self/stat")
	require.NoError(t, err)
	_, ok := ParseStat(self)
	require.True(t, ok)
	require.NotEqual(t, "?", LoadAvg())
}

// TestFamily: a process's family is itself and its direct children, each
// once, and their CPU time is counted.
func TestFamily(t *testing.T) {
	child := exec.Command("sleep", "30")
	require.NoError(t, child.Start())
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	self, kid := "/proc/"+strconv.Itoa(os.Getpid()), "/proc/"+strconv.Itoa(child.Process.Pid)

	fam := Family(os.Getpid(), os.Getpid(), 0)
	require.Contains(t, fam, self)
	require.Contains(t, fam, kid)
	require.Len(t, fam, len(slices.Compact(slices.Sorted(slices.Values(fam)))), "each process once")
	require.Equal(t, []string{kid}, Family(child.Process.Pid))
	require.Empty(t, Family(0, -1))

	// A test binary can start in less than a tick (10 ms) of CPU: spend
	// some, bounded, before counting.
	sum := 0
	for start := time.Now(); CPUTicks(os.Getpid()) == 0 && time.Since(start) < 5*time.Second; {
		for i := range 1_000_000 {
			sum += i
		}
	}
	require.Positive(t, CPUTicks(os.Getpid()), "the test binary has run for more than a tick (spun to %d)", sum)
}

func TestParseSwitches(t *testing.T) {
	tests := []struct {
		name   string
		status string
		want   int64
	}{
		{"both", "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n", 15},
		{"one", "voluntary_ctxt_switches:\t7", 7},
		{"none", "Name:\tx\nState:\tS (sleeping)\n", 0},
		{"garbage value", "voluntary_ctxt_switches:\tmany\nnonvoluntary_ctxt_switches:\t2\n", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, ParseSwitches([]byte(tc.status)))
		})
	}
	// This process has switched at least once by now (the runtime's
	// threads sleep and wake).
	require.Positive(t, ContextSwitches(os.Getpid()))
}
