package fsm_test

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// Hosts registered without an address get the allocator's next one; a
// decommissioned host's address is not handed to the next host (the core
// keeps the old peer for a grace period, and a shared address would clash);
// the allocator survives a snapshot.
func TestTunnelAddressesAreAllocatedNextFit(t *testing.T) {
	f := fsm.New()
	run := func(c *fsm.Command) fsm.Result {
		res := fsmtest.Apply(t, f, c)
		require.NoError(t, res.Err)
		return res
	}
	reg := func(id string) netip.Addr {
		run(&fsm.Command{Type: fsm.CmdRegisterHost, RequestID: "reg-" + id, Host: &fsm.Host{ID: id, Name: id, Role: fsm.RoleBack,
			PublicKey: "key-" + id, TokenID: "t1", Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 512, DiskMB: 100}}})
		return f.State().Hosts[id].TunnelAddr
	}
	run(&fsm.Command{Type: fsm.CmdCreateToken, RequestID: "tok", Token: &fsm.JoinToken{ID: "t1", Hash: "h1"}})
	run(&fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{ID: "core1", TunnelAddr: netip.MustParseAddr("100.64.1.2")}})

	require.Equal(t, "100.64.1.1", reg("a").String())
	require.Equal(t, "100.64.1.3", reg("b").String(), "a core node's address is skipped")
	run(&fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: "a", Status: fsm.HostDecommissioned}}}})
	require.Equal(t, "100.64.1.4", reg("c").String(), "the freed 100.64.1.1 is not reused at once")

	f = fsmtest.Restore(t, fsmtest.Persist(t, f))
	require.Equal(t, "100.64.1.5", reg("d").String(), "a restored node continues where the original was")
}
