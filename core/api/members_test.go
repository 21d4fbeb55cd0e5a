package api

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLeaderRemovingItselfStopsServing: a node removed from the group, here
// the leader removing itself, answers every call 410 from then on and says
// why; GET /v1/cluster/members lists the group before.
func TestLeaderRemovingItselfStopsServing(t *testing.T) {
	f := newFixture(t)
	f.call("POST", "/v1/cluster/voters", `{"id":"core2","raft_address":"127.0.0.1:8411"}`, http.StatusOK, nil)
	var members []NodeView
	f.call("GET", "/v1/cluster/members", "", http.StatusOK, &members)
	require.Len(t, members, 2)
	require.True(t, members[0].Leader)

	f.call("DELETE", "/v1/cluster/voters/core1", "", http.StatusNoContent, nil)
	require.True(t, f.api.Removed())
	for _, path := range []string{"/v1/status", "/v1/hosts", "/metrics"} {
		rec := f.do(request{method: "GET", path: path, token: operatorToken})
		require.Equal(t, http.StatusGone, rec.Code, path)
		require.Contains(t, errorOf(t, rec), "core node core1 was removed from the cluster")
	}
}

// TestRemovedNotice: only the node named may be told it was removed.
func TestRemovedNotice(t *testing.T) {
	f := newFixture(t)
	f.call("POST", "/v1/internal/removed", `{"id":"core7"}`, http.StatusBadRequest, nil)
	require.False(t, f.api.Removed())
	rec := f.do(request{method: "POST", path: "/v1/internal/removed", body: `{"id":"core1"}`})
	require.Equal(t, http.StatusUnauthorized, rec.Code, "the operator token is required")
	f.call("POST", "/v1/internal/removed", `{"id":"core1"}`, http.StatusNoContent, nil)
	require.True(t, f.api.Removed())
}
