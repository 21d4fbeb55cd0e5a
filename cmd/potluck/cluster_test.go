package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
)

// TestClusterMembership: `potluck cluster members|add|remove` against a
// three-node group: members with their version, a voter added and removed,
// a follower removed, after which it answers 410.
func TestClusterMembership(t *testing.T) {
	cores := apitest.StartCluster(t, 3)
	leader := apitest.Leader(t, cores)
	f := apitest.Follower(t, cores)
	vars := map[string]string{"POTLUCK_ADDR": leader.URL, "POTLUCK_TOKEN": apitest.Token}

	r := potluck(t, vars, false, "cluster", "members")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 4, strings.Count(r.stdout, "\n"), r.stdout)
	require.Contains(t, r.stdout, "VERSION")
	require.Contains(t, r.stdout, "go1.", "every node's build is shown")

	r = potluck(t, vars, false, "cluster", "add", "core9", "127.0.0.1:9")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "core node core9 added")
	require.Contains(t, r.stdout, "core9")
	r = potluck(t, vars, false, "cluster", "remove", "core9")
	require.Equal(t, 0, r.code, r.stderr)

	id := f.Server.Node.ID()
	r = potluck(t, vars, false, "cluster", "remove", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "core node "+id+" removed")
	r = potluck(t, vars, false, "--json", "cluster", "members")
	require.Equal(t, 0, r.code, r.stderr)
	require.NotContains(t, r.stdout, `"`+id+`"`)

	r = potluck(t, map[string]string{"POTLUCK_ADDR": f.URL, "POTLUCK_TOKEN": apitest.Token}, false, "status")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "was removed from the cluster")
	require.Contains(t, r.stderr, "HTTP 410")

	r = potluck(t, vars, false, "cluster", "remove", "nobody")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "HTTP 404")
}
