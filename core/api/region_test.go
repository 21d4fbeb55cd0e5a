package api

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHostRegion: a host registers where it is; registering again (its next
// start) with another region updates it; a bad name is refused.
func TestHostRegion(t *testing.T) {
	f := newFixture(t)
	body := func(region string) string {
		return fmt.Sprintf(`{"name":"f1","role":"front","public_key":%q,"cpus":1,"memory_mb":512,"disk_mb":1000,"endpoint":"203.0.113.1:51820","region":%q}`, testKey(1), region)
	}
	register := func(region string, want int) {
		tok := f.joinToken(`{}`)
		rec := f.do(request{method: http.MethodPost, path: "/v1/hosts", token: tok.Token, body: body(region)})
		require.Equal(t, want, rec.Code, rec.Body.String())
	}
	cases := []struct {
		region string
		code   int
	}{
		{"eu-west", http.StatusCreated},
		{"eu-west", http.StatusOK},
		{"us-east.2", http.StatusOK},
		{"", http.StatusOK},
		{"EU", http.StatusBadRequest},
		{"eu west", http.StatusBadRequest},
	}
	for _, tc := range cases {
		register(tc.region, tc.code)
		if tc.code < 300 {
			require.Equal(t, tc.region, f.node.State().HostByName("f1").Region, tc.region)
		}
	}
}

// TestHostAnnouncesHTTPGateway: a Back says at every start whether it runs
// the HTTP gateway, and the core keeps what it last said; a Front's claim
// is ignored (only Backs parse requests for it).
func TestHostAnnouncesHTTPGateway(t *testing.T) {
	f := newFixture(t)
	register := func(name, role string, n byte, gateway bool, want int) {
		t.Helper()
		body := fmt.Sprintf(`{"name":%q,"role":%q,"public_key":%q,"cpus":1,"memory_mb":512,"disk_mb":1000,"endpoint":"203.0.113.1:51820","http_gateway":%t}`, name, role, testKey(n), gateway)
		rec := f.do(request{method: http.MethodPost, path: "/v1/hosts", token: f.joinToken(`{}`).Token, body: body})
		require.Equal(t, want, rec.Code, rec.Body.String())
	}
	cases := []struct {
		gateway bool
		code    int
	}{
		{true, http.StatusCreated},
		{true, http.StatusOK},
		{false, http.StatusOK}, // restarted with --raw-relay
		{true, http.StatusOK},
	}
	for _, tc := range cases {
		register("b1", "back", 2, tc.gateway, tc.code)
		require.Equal(t, tc.gateway, f.node.State().HostByName("b1").HTTPGateway)
	}
	register("f1", "front", 3, true, http.StatusCreated)
	require.False(t, f.node.State().HostByName("f1").HTTPGateway)
}
