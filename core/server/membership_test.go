package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/api"
)

// TestRemovedNodeStopsServing: a follower removed online answers 410 and
// says why, signals Removed (potluck-core exits on it), and its data
// directory refuses to start again; the others go on as a group of two
// (issue 11, membership).
func TestRemovedNodeStopsServing(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	l := c.leader()
	f := c.follower()
	gone := c.nodes[f]
	id := gone.cfg.NodeID

	var members []api.NodeView
	r := c.call(l, "GET", "/v1/cluster/members", nil)
	r.json(t, &members)
	require.Len(t, members, 3)

	r = c.call(l, "DELETE", "/v1/cluster/voters/"+id, nil)
	require.Equal(t, http.StatusNoContent, r.code, r.String())
	select {
	case <-gone.Removed():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed node was not told")
	}
	r = call(t, "GET", gone.URL()+"/v1/status", testToken, nil, nil)
	require.Equal(t, http.StatusGone, r.code, r.String())
	require.Contains(t, string(r.body), "was removed from the cluster")

	r = c.call(l, "GET", "/v1/cluster/members", nil)
	r.json(t, &members)
	require.Len(t, members, 2)
	r = c.call(l, "POST", "/v1/apps", map[string]any{"name": "after", "image": "x/after:1", "container_port": 8080})
	require.Equal(t, http.StatusCreated, r.code, "two of two voters commit: %s", r)

	c.stop(f)
	_, err := Start(c.cfgs[f])
	require.ErrorContains(t, err, "was removed from its cluster")
}
