package fleet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	ok := Config{Hosts: 10, Instances: 20, CoreBin: "core", Dir: "d"}
	tests := []struct {
		name string
		edit func(*Config)
		err  string
	}{
		{"fine", func(*Config) {}, ""},
		{"one host", func(c *Config) { c.Hosts = 1 }, "--hosts must be at least 2"},
		{"no instances", func(c *Config) { c.Instances = 0 }, "--instances must be at least 1"},
		{"more than the ports", func(c *Config) { c.Hosts, c.Instances = 2, 1002 }, "do not fit"},
		{"no binary", func(c *Config) { c.CoreBin = "" }, "potluck-core binary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestLatencyPercentiles(t *testing.T) {
	l := newLatencies()
	for i := 1; i <= 100; i++ {
		l.add(time.Duration(i) * time.Millisecond)
	}
	p50, n := l.pct(50)
	require.Equal(t, 100, n)
	require.Equal(t, 50*time.Millisecond, p50)
	p99, _ := l.pct(99)
	require.Equal(t, 99*time.Millisecond, p99)
	l.reset()
	_, n = l.pct(99)
	require.Zero(t, n)
}

func TestSampleProcReadsThisProcess(t *testing.T) {
	s, err := sampleProc(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, s.rss)
	require.GreaterOrEqual(t, s.hwm, s.rss)
}

// TestSmallFleet runs the whole bench on a tiny fleet: three real core
// processes, 4 hosts, 6 instances (a smoke test of the harness, not a
// measurement).
func TestSmallFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds potluck-core and runs four core processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "potluck-core")
	out, err := exec.Command("go", "build", "-o", bin, "potluck/cmd/potluck-core").CombinedOutput()
	require.NoError(t, err, "%s", out)
	work := filepath.Join(dir, "run")
	require.NoError(t, os.MkdirAll(work, 0o700))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{Hosts: 4, Instances: 6, PerInstallation: 3, CoreBin: bin, Dir: work, Hold: 2 * time.Second, Heartbeat: time.Second})
	require.NoError(t, err)
	require.Equal(t, 2, res.Installations)
	require.Positive(t, res.PlacementsPerSec)
	require.Positive(t, res.SnapshotBytes)
	require.Positive(t, res.CatchUpTime)
	require.Positive(t, res.LeaderRSS)
}
