package front

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/lb"
)

func TestRoutesUseRunningInstancesOnly(t *testing.T) {
	in := []agentproto.Route{
		{Installation: "a", Domain: "a.test", Backends: []agentproto.Backend{
			{Address: "100.64.1.1:5000", State: agentproto.InstanceRunning},
			{Address: "100.64.1.2:5000", State: agentproto.InstancePending},
			{Address: "100.64.1.3:5001", State: agentproto.InstanceFailed},
			{Address: "100.64.1.3:5002", State: agentproto.InstanceDraining},
		}},
		{Installation: "b", Domain: "b.test", Backends: []agentproto.Backend{{Address: "100.64.1.4:5000", State: agentproto.InstancePending}}},
	}
	got := Routes(in, 1)
	require.Equal(t, []lb.Route{
		{Name: "a", Hosts: []string{"a.test"}, Backends: []lb.Backend{{Addr: "100.64.1.1:5000"}}},
		{Name: "b", Hosts: []string{"b.test"}, Backends: []lb.Backend{{Addr: UnavailableAddr}}},
	}, got)
	require.NoError(t, lb.ValidateRoutes(got))
}

// TestRoutesPipelineGatewayBacksOnly: instances on Backs that run the HTTP
// gateway get the Front's pipelined connections; raw relays never do, and
// 0 turns pipelining off.
func TestRoutesPipelineGatewayBacksOnly(t *testing.T) {
	in := []agentproto.Route{{Installation: "a", Domain: "a.test", Backends: []agentproto.Backend{
		{Address: "100.64.1.1:5000", State: agentproto.InstanceRunning, Pipeline: true},
		{Address: "100.64.1.2:5000", State: agentproto.InstanceRunning},
	}}}
	tests := []struct {
		pipeline int
		want     []lb.Backend
	}{
		{1, []lb.Backend{{Addr: "100.64.1.1:5000", Pipeline: 1}, {Addr: "100.64.1.2:5000"}}},
		{4, []lb.Backend{{Addr: "100.64.1.1:5000", Pipeline: 4}, {Addr: "100.64.1.2:5000"}}},
		{0, []lb.Backend{{Addr: "100.64.1.1:5000"}, {Addr: "100.64.1.2:5000"}}},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, Routes(in, tc.pipeline)[0].Backends, "pipeline %d", tc.pipeline)
	}
}

// TestKnownDomainWithoutReadyInstanceIs503: a domain the Front serves but
// whose instances are all starting answers 503 with Retry-After (an
// unknown domain stays 404), through a real proxy on loopback.
func TestKnownDomainWithoutReadyInstanceIs503(t *testing.T) {
	u := newUnavailable(slog.New(slog.DiscardHandler))
	defer u.close()
	p := lb.New(lb.Options{Dialer: u.dialer(lb.TCPDialer())})
	require.NoError(t, p.Update(Routes([]agentproto.Route{
		{Installation: "b", Domain: "b.test", Backends: []agentproto.Backend{{Address: "100.64.1.4:5000", State: agentproto.InstancePending}}},
	}, 1)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go p.Serve(ln)
	defer p.Shutdown(t.Context())

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(host string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 3 { // repeated: the placeholder is never marked down
		resp := get("b.test")
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		require.Equal(t, "5", resp.Header.Get("Retry-After"))
	}
	require.Equal(t, http.StatusNotFound, get("unknown.test").StatusCode)
}
