package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/cluster"
)

// TestSnapshotRestoredIntoAFreshCluster: a snapshot saved from a running
// three-node cluster (through a follower, which forwards to the leader)
// restores into a fresh three-node cluster, whose every node then holds the
// old state and goes on taking writes (issue 11, snapshot save and restore).
func TestSnapshotRestoredIntoAFreshCluster(t *testing.T) {
	old := newTestCluster(t, 3, nil)
	for i := range 5 {
		r := old.call(old.leader(), "POST", "/v1/apps", map[string]any{"name": fmt.Sprintf("app%d", i), "image": "x/app:1", "container_port": 8080})
		require.Equal(t, http.StatusCreated, r.code, r.String())
	}
	tok := old.joinToken(old.leader())
	r := old.call(old.follower(), "GET", "/v1/cluster/snapshot", nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
	snap := r.body
	for i := range old.nodes {
		old.stop(i)
	}

	fresh := newTestCluster(t, 3, nil)
	before := fresh.nodes[fresh.leader()].Node.FSM.State().Index
	r = call(t, "POST", fresh.nodes[fresh.follower()].URL()+"/v1/cluster/snapshot", testToken, snap, map[string]string{"X-Request-Id": "restore-1"})
	require.Equal(t, http.StatusOK, r.code, r.String())
	fresh.waitSettled()
	fresh.waitConverged()
	for i, n := range fresh.nodes {
		st := n.Node.FSM.State()
		require.Greater(t, st.Index, before, "node %d: the state index does not go back", i)
		require.Len(t, st.Apps, 5, "node %d", i)
		require.Len(t, st.Tokens, 1, "node %d", i)
	}
	r = fresh.call(fresh.leader(), "POST", "/v1/apps", map[string]any{"name": "after", "image": "x/after:1", "container_port": 8080})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	fresh.registerHost(fresh.follower(), tok, "b1", "back", 1, 512) // the old join token works
}

// TestQuorumLossRecoveredFromOneNode: two of three nodes are lost for good;
// the survivor, given a peers.json that lists itself alone, starts as a
// one-node group with everything it held and takes writes again (issue 11,
// loss of quorum).
func TestQuorumLossRecoveredFromOneNode(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	r := c.call(c.leader(), "POST", "/v1/apps", map[string]any{"name": "kept", "image": "x/kept:1", "container_port": 8080})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	c.waitConverged()
	survivor := c.follower()
	for i := range c.nodes {
		c.stop(i)
	}

	cfg := c.cfgs[survivor]
	peers, err := json.Marshal([]map[string]any{{"id": cfg.NodeID, "address": cfg.RaftBind, "non_voter": false}})
	require.NoError(t, err)
	peersFile := filepath.Join(cfg.DataDir, "raft", cluster.PeersFile)
	require.NoError(t, os.WriteFile(peersFile, peers, 0o600))
	c.start(survivor)
	c.leader()
	require.NoFileExists(t, peersFile, "peers.json applies once")
	require.FileExists(t, peersFile+".applied")

	r = c.call(survivor, "GET", "/v1/apps/kept", nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
	r = c.call(survivor, "POST", "/v1/apps", map[string]any{"name": "after", "image": "x/after:1", "container_port": 8080})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var members []struct{ ID string }
	c.call(survivor, "GET", "/v1/cluster/members", nil).json(t, &members)
	require.Len(t, members, 1)

	// Restarted again, the node keeps the recovered membership.
	c.stop(survivor)
	c.start(survivor)
	c.leader()
	r = c.call(survivor, "GET", "/v1/apps/after", nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
}
