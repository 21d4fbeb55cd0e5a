package server

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMetricsListener: the public API serves /metrics to the operator token
// only; --metrics-listen serves them without one, on its own address (issue
// 11: /metrics on the public listener was unauthenticated by accident).
func TestMetricsListener(t *testing.T) {
	c := newTestCluster(t, 1, func(_ int, cfg *Config) {
		cfg.Peers = nil
		cfg.MetricsAddr = "127.0.0.1:0"
	})
	n := c.nodes[0]
	r := call(t, "GET", n.URL()+"/metrics", "", nil, nil)
	require.Equal(t, http.StatusUnauthorized, r.code)

	require.NotEmpty(t, n.MetricsURL())
	r = call(t, "GET", n.MetricsURL(), "", nil, nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
	require.Contains(t, string(r.body), `potluck_core_raft_state{state="Leader"} 1`)

	r = call(t, "GET", n.MetricsURL()[:len(n.MetricsURL())-len("/metrics")]+"/v1/status", testToken, nil, nil)
	require.Equal(t, http.StatusNotFound, r.code, "the metrics listener serves nothing else")
}
