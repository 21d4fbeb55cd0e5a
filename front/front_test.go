package front

import (
	"testing"

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
		}},
		{Installation: "b", Domain: "b.test", Backends: []agentproto.Backend{{Address: "100.64.1.4:5000", State: agentproto.InstancePending}}},
	}
	got := Routes(in)
	require.Equal(t, []lb.Route{{Name: "a", Hosts: []string{"a.test"}, Backends: []lb.Backend{{Addr: "100.64.1.1:5000"}}}}, got)
	require.NoError(t, lb.ValidateRoutes(got))
}
