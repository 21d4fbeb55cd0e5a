package ui

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
)

func TestChartsDrawEverySeries(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := &apiclient.Metrics{StepSeconds: 60}
	for i := range 3 {
		m.Points = append(m.Points, apiclient.MetricsPoint{At: t0.Add(time.Duration(i) * time.Minute), Requests: float64(60 * (i + 1)), Errors: 6,
			P50MS: 10, P95MS: 40, CPU: 0.25 * float64(i+1), Memory: 0.5, Instances: i + 1, Backs: true, Fronts: true})
	}
	cs := charts(m)
	require.Len(t, cs, 4)
	require.Equal(t, "3.00/s", cs[0].Max, "requests are drawn per second")
	require.Equal(t, "requests 3.00/s · errors (5xx) 0.10/s", cs[0].Last)
	require.Equal(t, "p50 10.0 ms · p95 40.0 ms", cs[1].Last)
	require.Equal(t, "CPU 75.0 % · memory 50.0 %", cs[2].Last)
	require.Len(t, cs[2].Lines, 2)
	require.Equal(t, "0.0,59.3 180.0,30.7 360.0,2.0", cs[2].Lines[0].Points, "25, 50 and 75 on a scale topped at 75, newest right")
	require.True(t, newChart("x", "", []string{"a"}, nil).Empty)
}
