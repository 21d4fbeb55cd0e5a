package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/meshnet"
)

// registration is a core's answer to POST /v1/hosts: host h-1 with one core
// node (a fresh key) as its hub.
func registration(t *testing.T) agentproto.Registration {
	coreKey, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	return agentproto.Registration{
		Host: agentproto.Host{ID: "h-1", Name: "back1"}, TunnelAddr: "100.64.1.9",
		CorePeers: []agentproto.CorePeer{{ID: "core1", PublicKey: coreKey.Public().String(), Endpoint: "127.0.0.1:9", TunnelAddr: "100.64.0.1", AgentURL: "http://100.64.0.1:7400"}},
	}
}

// fakeCore answers POST /v1/hosts with the given statuses in turn, then 201.
func fakeCore(t *testing.T, statuses ...int) (url string, ids func() []string) {
	reg := registration(t)
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Request-Id"))
		n := len(seen)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n <= len(statuses) {
			w.WriteHeader(statuses[n-1])
			json.NewEncoder(w).Encode(map[string]string{"error": "leadership changed during the request; retry with the same X-Request-Id"})
			return
		}
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(reg)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

func TestNewHostRetriesRegistrationThroughElections(t *testing.T) {
	url, ids := fakeCore(t, 503, 503)
	a, err := Start(context.Background(), Config{CoreURLs: []string{url}, Name: "back1", Role: "back",
		CPUs: 1, MemoryMB: 512, DiskMB: 1024, DataDir: t.TempDir(), RegisterTimeout: 30 * time.Second})
	require.NoError(t, err)
	defer a.Close()
	require.Equal(t, "h-1", a.Identity().HostID)
	seen := ids()
	require.Len(t, seen, 3)
	require.NotEmpty(t, seen[0])
	require.Equal(t, seen[0], seen[2], "one request id across retries, so the write is applied once")
}

func TestRegistrationRefusalIsFinal(t *testing.T) {
	url, ids := fakeCore(t, http.StatusUnauthorized)
	_, err := Start(context.Background(), Config{CoreURLs: []string{url}, Name: "back1", Role: "back",
		CPUs: 1, MemoryMB: 512, DiskMB: 1024, DataDir: t.TempDir(), RegisterTimeout: 30 * time.Second})
	require.ErrorContains(t, err, "401")
	require.Len(t, ids(), 1, "a 4xx is not retried")
}

func TestBadConfigIsOneClearError(t *testing.T) {
	_, err := Start(context.Background(), Config{Role: "back"})
	require.ErrorContains(t, err, "at least one core URL is required (--core)")
	require.ErrorContains(t, err, "a host name is required")
	require.ErrorContains(t, err, "a data directory is required")
}
