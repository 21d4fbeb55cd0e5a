package lb

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLocalErrorsNeverCountAgainstBackends: requests the proxy itself cannot
// send as they came (no Host header, an absolute https URI) are served, and
// never take a backend out. Before, an HTTP/1.0 request without Host made
// fasthttp refuse to write it ("missing required host header"), which was
// counted as the backend's failure: any client could take the default route
// out for fail_timeout.
func TestLocalErrorsNeverCountAgainstBackends(t *testing.T) {
	cases := []struct {
		name     string
		route    Route
		request  string
		wantHost string // "" = the backend's address
	}{
		{"HTTP/1.0 without Host, default route without names", Route{Default: true},
			"GET / HTTP/1.0\r\n\r\n", ""},
		{"HTTP/1.0 without Host, default route with a name", Route{Default: true, Hosts: []string{"app.test"}},
			"GET / HTTP/1.0\r\n\r\n", "app.test"},
		{"absolute https URI", Route{Hosts: []string{"app.test"}},
			"GET https://app.test/x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n", "app.test"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hosts := make(chan string, 8)
			h := func(w http.ResponseWriter, r *http.Request) { hosts <- r.Host }
			a, b := startBackend(t, "a", h), startBackend(t, "b", h)
			r := tc.route
			r.Backends = []Backend{{Addr: a.addr}, {Addr: b.addr}}
			p := startProxy(t, Options{}, []Route{r})
			for i := range 4 {
				resp, _ := rawRequest(t, p.addr, tc.request)
				require.Equal(t, 200, resp.StatusCode, "request %d", i)
				want := tc.wantHost
				if want == "" {
					want = a.addr + " or " + b.addr
					got := <-hosts
					require.True(t, got == a.addr || got == b.addr, "backend saw Host %q, want %s", got, want)
				} else {
					require.Equal(t, want, <-hosts)
				}
			}
			require.Equal(t, int64(2), a.hits.Load(), "both backends stay in the rotation")
			require.Equal(t, int64(2), b.hits.Load())
			for _, st := range p.Status().Routes[0].Backends {
				require.Equal(t, "live", st.State)
				require.Zero(t, st.Failures)
			}
		})
	}
}
