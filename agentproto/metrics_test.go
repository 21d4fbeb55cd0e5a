package agentproto

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMetricsReportCheck(t *testing.T) {
	cases := []struct {
		name   string
		change func(*MetricsReport)
		ok     bool
	}{
		{"good", func(*MetricsReport) {}, true},
		{"counts do not match bounds", func(m *MetricsReport) { m.Routes[0].LatencyCounts = []uint64{1} }, false},
		{"bounds not increasing", func(m *MetricsReport) { m.Routes[0].LatencyBoundsMS = []float64{2, 1} }, false},
		{"more errors than requests", func(m *MetricsReport) { m.Routes[0].Errors = 9 }, false},
		{"negative cpu", func(m *MetricsReport) { m.Instances[0].CPU = -1 }, false},
		{"instance without id", func(m *MetricsReport) { m.Instances[0].ID = "" }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := MetricsReport{IntervalMS: 1000,
				Routes:    []RouteMetrics{{Installation: "a", Requests: 3, Errors: 1, LatencyBoundsMS: []float64{1, 2}, LatencyCounts: []uint64{1, 1, 1}}},
				Instances: []InstanceMetrics{{ID: "i", Installation: "a", CPU: 0.5, Memory: 0.2}}}
			c.change(&m)
			if c.ok {
				require.NoError(t, m.Check())
			} else {
				require.Error(t, m.Check())
			}
		})
	}
}
