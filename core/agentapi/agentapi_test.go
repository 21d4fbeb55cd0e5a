package agentapi

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

func TestBlockingStateWakesOnlyForThisHost(t *testing.T) {
	f := fsm.New()
	apply := func(c *fsm.Command) uint64 {
		t.Helper()
		res := fsmtest.Apply(t, f, c)
		require.NoError(t, res.Err)
		return res.Index
	}
	apply(&fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "t", Hash: "h"}})
	for i, name := range []string{"back", "front"} {
		role := fsm.RoleBack
		if name == "front" {
			role = fsm.RoleFront
		}
		apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: name, Name: name, Role: role, PublicKey: "key-" + name, TunnelAddr: netip.AddrFrom4([4]byte{100, 64, 1, byte(1 + i)}),
			TokenID: "t", Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1000, DiskMB: 1000},
		}})
	}
	h := New(Config{State: f})
	seen := f.State() // what the agent saw last
	start := seen.Index

	got := make(chan uint64, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		got <- h.waitForChange(ctx, seen, start, "back").Index
	}()
	// Unrelated to the Back: an app nobody runs.
	apply(&fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "a", Image: "x:1", ContainerPort: 80}})
	// Related: an instance placed on the Back.
	related := apply(&fsm.Command{Type: fsm.CmdCreateInstallation,
		Installation: &fsm.Installation{Name: "i", App: "a", Fronts: 1, Backs: 1, Domain: "i.example", ContainerPort: 80, FrontHosts: []string{"front"}},
		Instances:    []*fsm.Instance{{ID: "i1", Installation: "i", HostID: "back", Port: 5000}}})
	require.Equal(t, related, <-got, "woke up for a change that does not concern this host")

	// An agent that is behind gets the state at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.Equal(t, related, h.waitForChange(ctx, f.State(), start, "back").Index)
}
