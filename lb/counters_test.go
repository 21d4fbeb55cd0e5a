package lb

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/lb/metrics"
)

func TestCountersCountRequestsErrorsAndLatency(t *testing.T) {
	var fail atomic.Bool
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	p := startProxy(t, Options{}, []Route{route("app.test", b.addr)})
	cl := newClient()
	for range 3 {
		do(t, cl, "GET", p.url, "app.test", nil)
	}
	fail.Store(true)
	do(t, cl, "GET", p.url, "app.test", nil)

	cs := p.Counters()
	require.Len(t, cs, 1)
	c := cs[0]
	require.Equal(t, uint64(4), c.Requests)
	require.Equal(t, uint64(1), c.Errors, "the backend's 500 counts as an error")
	require.Len(t, c.LatencyCounts, len(metrics.BoundsSeconds())+1)
	var n uint64
	for _, v := range c.LatencyCounts {
		n += v
	}
	require.Equal(t, uint64(4), n)
	require.Positive(t, c.LatencySum)
}
