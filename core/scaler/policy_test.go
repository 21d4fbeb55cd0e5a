package scaler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/autoscale"
	"potluck/core/fsm"
	"potluck/core/series"
)

func TestPolicyMapsTheSettings(t *testing.T) {
	inst := &fsm.Installation{PerInstance: fsm.Resources{MilliCPU: 250, MemoryMB: 128},
		Autoscale: &fsm.Autoscale{Min: 2, Max: 5, CPUTarget: 0.6}}
	cases := []struct {
		policy string
		check  func(t *testing.T, p autoscale.Policy)
	}{
		{"", func(t *testing.T, p autoscale.Policy) {
			c := p.(autoscale.Combined)
			require.Equal(t, 0.6, c.Reactive.Rules.CountUpCPU, "the target is rule 1's threshold")
			require.Equal(t, 0.6, c.Reactive.Rules.SizeUpCPU)
			require.InDelta(t, 0.48, c.Proactive.SafeUtilisation, 1e-9, "0.8 × the target")
			require.NoError(t, c.Validate())
		}},
		{fsm.AutoscaleReactive, func(t *testing.T, p autoscale.Policy) {
			r := p.(autoscale.Reactive)
			require.Equal(t, 0.6, r.Rules.CountUpCPU)
			require.NoError(t, r.Validate())
		}},
		{fsm.AutoscaleHPA, func(t *testing.T, p autoscale.Policy) {
			h := p.(autoscale.HPA)
			require.Equal(t, 0.6, h.TargetCPU)
			require.Equal(t, 5*time.Minute, h.Stabilisation, "five steps")
		}},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			in := *inst
			a := *inst.Autoscale
			a.Policy = c.policy
			in.Autoscale = &a
			p, ladder, bounds := Policy(&in, time.Minute)
			c.check(t, p)
			require.Len(t, ladder, 1, "the count changes, never the size")
			require.Equal(t, 0.25, ladder[0].Units)
			require.Equal(t, autoscale.Bounds{MinCount: 2, MaxCount: 5}, bounds)
			require.NoError(t, bounds.Validate(ladder))
		})
	}
	// The lowest target allowed still makes valid rules.
	in := *inst
	in.Autoscale = &fsm.Autoscale{Min: 1, Max: 2, CPUTarget: fsm.MinCPUTarget}
	p, _, _ := Policy(&in, time.Minute)
	require.NoError(t, p.(autoscale.Combined).Validate())
}

func TestSamplesSkipPointsWithoutBackData(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got := Samples([]series.Point{
		{At: t0, Requests: 10, CPU: 0.5, Instances: 2, Backs: true, MeanMS: 20},
		{At: t0.Add(time.Minute), Requests: 12, Fronts: true},
	})
	require.Len(t, got, 1, "no CPU data is not idle")
	require.Equal(t, autoscale.Sample{At: t0, Requests: 10, CPU: 0.5, RequestTime: 20 * time.Millisecond, Running: autoscale.State{Count: 2}}, got[0])
}
