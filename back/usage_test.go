package back

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/back/engine"
)

func TestInstanceUsageIsAShareOfTheLimits(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := engine.Usage{Read: t0, CPU: time.Second}
	cases := []struct {
		name     string
		cur      engine.Usage
		cpus     float64
		memoryMB int64
		cpu, mem float64
		ok       bool
	}{
		{"half of a quarter core", engine.Usage{Read: t0.Add(10 * time.Second), CPU: time.Second + 1250*time.Millisecond, Memory: 32 << 20, MemoryLimit: 64 << 20}, 0.25, 64, 0.5, 0.5, true},
		{"the instance's memory limit when the engine reports the machine's", engine.Usage{Read: t0.Add(time.Second), CPU: time.Second, Memory: 16 << 20, MemoryLimit: 1 << 40}, 1, 64, 0, 0.25, true},
		{"no time passed", engine.Usage{Read: t0, CPU: 2 * time.Second}, 1, 64, 0, 0, false},
		{"counter went back (container re-created)", engine.Usage{Read: t0.Add(time.Second), CPU: 0}, 1, 64, 0, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cpu, mem, ok := instanceUsage(prev, c.cur, c.cpus, c.memoryMB)
			require.Equal(t, c.ok, ok)
			require.InDelta(t, c.cpu, cpu, 1e-9)
			require.InDelta(t, c.mem, mem, 1e-9)
		})
	}
	_, _, ok := instanceUsage(engine.Usage{}, prev, 1, 64)
	require.False(t, ok, "a first reading has nothing to compare with")
}
