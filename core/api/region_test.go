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
