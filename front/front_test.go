package front

import (
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/agentapi"
	"potluck/core/fsm"
	"potluck/lb"
)

func TestRoutesUseRunningInstancesOnly(t *testing.T) {
	in := []agentapi.Route{
		{Installation: "a", Domain: "a.test", Backends: []agentapi.Backend{
			{Address: "100.64.1.1:5000", State: fsm.InstanceRunning},
			{Address: "100.64.1.2:5000", State: fsm.InstancePending},
			{Address: "100.64.1.3:5001", State: fsm.InstanceFailed},
		}},
		{Installation: "b", Domain: "b.test", Backends: []agentapi.Backend{{Address: "100.64.1.4:5000", State: fsm.InstancePending}}},
	}
	got := Routes(in)
	require.Equal(t, []lb.Route{{Name: "a", Hosts: []string{"a.test"}, Backends: []lb.Backend{{Addr: "100.64.1.1:5000"}}}}, got)
	require.NoError(t, lb.ValidateRoutes(got))
}
