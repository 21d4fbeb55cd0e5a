package server

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/api"
)

// TestRestartedNodeAloneAnswersStatusAndRefusesHonestly: every node of a
// cluster stopped, one restarted alone. Its state holds nothing yet (no
// snapshot, no leader to learn the commit index from), yet it answers its
// operator's status at once with health no_leader, serves ?stale reads from
// what it has, and answers a join token it cannot check with 503 and
// Retry-After, not 401 (issue 11, findings 2 and 3).
func TestRestartedNodeAloneAnswersStatusAndRefusesHonestly(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	tok := c.joinToken(c.leader())
	c.waitConverged()
	for i := range c.nodes {
		c.stop(i)
	}
	c.start(0)
	url := c.nodes[0].URL()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // a request waiting for a leader would take 5 s
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/status", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "status must not wait for a leader")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var st api.StatusView
	r := call(t, "GET", url+"/v1/status", testToken, nil, nil)
	r.json(t, &st)
	require.Equal(t, api.HealthNoLeader, st.Health)

	r = call(t, "GET", url+"/v1/hosts?stale", testToken, nil, nil)
	require.Equal(t, http.StatusOK, r.code, r.String())

	body := map[string]any{"name": "b1", "role": "back", "public_key": randomKey(t), "cpus": 1, "memory_mb": 512, "disk_mb": 10000}
	r = call(t, "POST", url+"/v1/hosts", tok, body, map[string]string{"X-Request-Id": "register-b1"})
	require.Equal(t, http.StatusServiceUnavailable, r.code, "a join token the node cannot check yet: %s", r)
	require.Equal(t, "1", r.header.Get("Retry-After"))
}
