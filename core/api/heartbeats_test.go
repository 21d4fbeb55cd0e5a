package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestHostsShowTheLastHeartbeat(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var heardFrom string
	f := newFixture(t, func(c *Config) {
		c.LastHeartbeat = func(id string) (time.Time, bool) { return at, id == heardFrom }
	})
	reg := f.register("b1", "back", 2)
	f.register("b2", "back", 3)
	heardFrom = reg.Host.ID

	var one HostView
	f.call(http.MethodGet, "/v1/hosts/b1", "", http.StatusOK, &one)
	require.NotNil(t, one.LastHeartbeat)
	require.True(t, at.Equal(*one.LastHeartbeat))
	var all []HostView
	f.call(http.MethodGet, "/v1/hosts", "", http.StatusOK, &all)
	require.Len(t, all, 2)
	for _, h := range all {
		require.Equal(t, h.Name == "b1", h.LastHeartbeat != nil, h.Name)
	}
	rec := f.call(http.MethodGet, "/v1/hosts/b2", "", http.StatusOK, nil)
	require.NotContains(t, rec.Body.String(), "last_heartbeat", "omitted when the leader has not heard from the host")

	// A change answers with the host as GET shows it (the last heartbeat
	// was missing from these answers).
	var patched, drained HostView
	f.call(http.MethodPatch, "/v1/hosts/b1", `{"lender":"alice"}`, http.StatusOK, &patched)
	require.NotNil(t, patched.LastHeartbeat)
	require.Equal(t, "alice", patched.Lender)
	f.call(http.MethodPost, "/v1/hosts/b1/decommission", "", http.StatusOK, &drained)
	require.NotNil(t, drained.LastHeartbeat)
}
