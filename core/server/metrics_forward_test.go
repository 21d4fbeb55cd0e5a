package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMetricsReachTheLeaderThroughAFollower: a metrics report a follower
// received (as its agent API hands it on) lands in the leader's series,
// and reading the series on a follower answers the leader's.
func TestMetricsReachTheLeaderThroughAFollower(t *testing.T) {
	c := newTestCluster(t, 3, func(i int, cfg *Config) { cfg.MetricsStep = 200 * time.Millisecond })
	c.waitSettled()
	l, f := c.leader(), c.follower()
	join := c.joinToken(l)
	front := c.registerHost(l, join, "front1", "front", 2, 2048)
	c.registerHost(l, join, "back1", "back", 2, 2048)
	r := c.call(l, "POST", "/v1/apps", map[string]any{"name": "web", "image": "registry.example/web:1", "container_port": 8080})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	r = c.call(l, "POST", "/v1/installations", map[string]any{"name": "site", "app": "web", "fronts": 1, "backs": 1, "domain": "site.example.com", "cpus": 0.25, "memory_mb": 128})
	require.Equal(t, http.StatusCreated, r.code, r.String())

	report := map[string]any{"host_id": front, "report": map[string]any{"interval_ms": 200, "routes": []map[string]any{{"installation": "site", "requests": 7}}}}
	r = c.call(f, "POST", "/v1/internal/metrics", report)
	require.Equal(t, http.StatusNoContent, r.code, r.String())
	require.Eventually(t, func() bool {
		r := c.call(f, "GET", "/v1/installations/site/metrics", nil)
		var v struct {
			Points []struct{ Requests float64 }
		}
		if r.code != http.StatusOK {
			return false
		}
		r.json(t, &v)
		return len(v.Points) == 1 && v.Points[0].Requests == 7
	}, 5*time.Second, 50*time.Millisecond, "the report never reached the leader's series")
}
