package metrics

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWriterFormatsPrometheusText(t *testing.T) {
	var c Counter
	c.Add(3)
	c.Inc()
	var h Histogram
	h.Observe(200 * time.Microsecond) // first bucket
	h.Observe(3 * time.Millisecond)   // 0.005
	h.Observe(2 * time.Minute)        // +Inf
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Counter("x_total", "Things.", Labels("route", `a"b`), c.Load())
	w.Counter("x_total", "Things.", Labels("route", "c"), 1)
	w.Gauge("up", "Up.", "", 1)
	w.Histogram("lat_seconds", "Latency.", Labels("route", "c"), &h)
	require.NoError(t, w.Err())
	out := buf.String()
	for _, want := range []string{
		"# HELP x_total Things.\n# TYPE x_total counter\n",
		`x_total{route="a\"b"} 4`,
		`x_total{route="c"} 1`,
		"up 1\n",
		`lat_seconds_bucket{route="c",le="0.0005"} 1`,
		`lat_seconds_bucket{route="c",le="0.005"} 2`,
		`lat_seconds_bucket{route="c",le="60"} 2`,
		`lat_seconds_bucket{route="c",le="+Inf"} 3`,
		`lat_seconds_count{route="c"} 3`,
	} {
		require.Contains(t, out, want)
	}
	require.Equal(t, 1, bytes.Count(buf.Bytes(), []byte("# TYPE x_total")), "HELP/TYPE once per family")
	require.Equal(t, uint64(3), h.Count())
}
