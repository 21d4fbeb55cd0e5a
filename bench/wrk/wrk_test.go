package wrk

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const sample = `Running 3s test @ http://127.0.0.1:40001/
  2 threads and 64 connections
  Latency Distribution
     50%    1.46ms
     75%    2.01ms
     90%    3.10ms
     99%  205.06ms
  90000 requests in 3.00s, 12.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:  30000.12
`

func TestParse(t *testing.T) {
	r, err := Parse(sample)
	require.NoError(t, err)
	require.InDelta(t, 30000.12, r.RPS, 0.001)
	require.InDelta(t, 90000, r.Requests, 0)
	require.Equal(t, 1460*time.Microsecond, r.P50)
	require.Equal(t, 205060*time.Microsecond, r.P99)
	require.Equal(t, 6, r.Errors, "non-2xx and socket errors both count")
	for _, bad := range []string{"unable to connect to 127.0.0.1:1 Connection refused", "Requests/sec: 5\n"} {
		_, err = Parse(bad)
		require.Error(t, err, bad)
	}
}

func TestMedianOf(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"odd", []float64{3, 1, 2}, 2},
		{"even: the upper", []float64{4, 1, 3, 2}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, MedianOf(tt.in, func(x float64) float64 { return x }))
		})
	}
	require.Equal(t, 2*time.Second, MedianDuration([]time.Duration{time.Second, 3 * time.Second, 2 * time.Second}, func(d time.Duration) time.Duration { return d }))
}
