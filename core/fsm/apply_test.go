package fsm_test

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

func script() []*fsm.Command {
	host := func(id, name string, role fsm.Role, addr string) *fsm.Command {
		return &fsm.Command{Type: fsm.CmdRegisterHost, RequestID: "reg-" + id, Host: &fsm.Host{
			ID: id, Name: name, Role: role, PublicKey: "key-" + id, TunnelAddr: netip.MustParseAddr(addr), TokenID: "t1",
			Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 2000, MemoryMB: 2048, DiskMB: 1000},
		}}
	}
	return []*fsm.Command{
		{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: "abc"},
		{Type: fsm.CmdCreateToken, RequestID: "tok", Token: &fsm.JoinToken{ID: "t1", Hash: "h1"}},
		host("h1", "back1", fsm.RoleBack, "100.64.1.1"),
		host("h2", "back2", fsm.RoleBack, "100.64.1.2"),
		host("h3", "front1", fsm.RoleFront, "100.64.1.3"),
		{Type: fsm.CmdCreateApp, RequestID: "app", App: &fsm.App{Name: "web", Image: "x:1", ContainerPort: 80}},
		{Type: fsm.CmdCreateInstallation, RequestID: "inst", Installation: &fsm.Installation{
			Name: "site", App: "web", Fronts: 1, Backs: 2, Domain: "site.example", ContainerPort: 80,
			PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 256, DiskMB: 10}, FrontHosts: []string{"h3"}, Env: map[string]string{"B": "2", "A": "1"},
		}, Instances: []*fsm.Instance{
			{ID: "i1", Installation: "site", HostID: "h1", Port: 5000},
			{ID: "i2", Installation: "site", HostID: "h2", Port: 5000},
		}},
		{Type: fsm.CmdPlan, Plan: &fsm.Plan{Update: []fsm.InstanceUpdate{{ID: "i1", State: fsm.InstanceRunning}}}},
	}
}

func TestApplyIsDeterministicAndSnapshotRestores(t *testing.T) {
	a, b := fsm.New(), fsm.New()
	for _, c := range script() {
		ra := fsmtest.Apply(t, a, c)
		rb := fsmtest.Apply(t, b, c)
		require.NoError(t, ra.Err)
		require.Equal(t, ra, rb)
	}
	ja, err := json.Marshal(a.State())
	require.NoError(t, err)
	jb, err := json.Marshal(b.State())
	require.NoError(t, err)
	require.Equal(t, string(ja), string(jb), "same log, same bytes")

	c := fsmtest.Restore(t, fsmtest.Persist(t, a))
	jc, err := json.Marshal(c.State())
	require.NoError(t, err)
	require.Equal(t, string(ja), string(jc))
}

func TestRequestIDIsAppliedOnce(t *testing.T) {
	f := fsm.New()
	cmds := script()
	for _, c := range cmds {
		require.NoError(t, fsmtest.Apply(t, f, c).Err)
	}
	before, err := json.Marshal(f.State().Instances)
	require.NoError(t, err)
	// The same installation command again (a client retry after an
	// indeterminate outcome): answered from the record, nothing applied.
	res := fsmtest.Apply(t, f, cmds[6])
	require.True(t, res.Replayed)
	require.NoError(t, res.Err)
	require.Equal(t, "site", res.Ref)
	after, err := json.Marshal(f.State().Instances)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after))
}

func TestRejectedCommandChangesNothing(t *testing.T) {
	f := fsm.New()
	for _, c := range script() {
		require.NoError(t, fsmtest.Apply(t, f, c).Err)
	}
	before := f.State()
	cases := []struct {
		name string
		cmd  *fsm.Command
		code fsm.Code
	}{
		{"port used twice", &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{
			Installations: []fsm.InstallationUpdate{{Name: "site", Fronts: 1, Backs: 3, FrontHosts: []string{"h3"}}},
			Add:           []*fsm.Instance{{ID: "i3", Installation: "site", HostID: "h1", Port: 5000}},
		}}, fsm.CodeConflict},
		{"beyond capacity", &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{
			Name: "big", App: "web", Fronts: 1, Backs: 1, Domain: "big.example", PerInstance: fsm.Resources{MilliCPU: 1800}, FrontHosts: []string{"h3"},
		}, Instances: []*fsm.Instance{{ID: "i9", Installation: "big", HostID: "h1", Port: 5001}}}, fsm.CodeConflict},
		{"port out of range", &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{
			Name: "odd", App: "web", Fronts: 1, Backs: 1, Domain: "odd.example", FrontHosts: []string{"h3"},
		}, Instances: []*fsm.Instance{{ID: "i8", Installation: "odd", HostID: "h1", Port: 80}}}, fsm.CodeInvalid},
		{"duplicate key", &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: "h9", Name: "other", Role: fsm.RoleBack, PublicKey: "key-h1", TunnelAddr: netip.MustParseAddr("100.64.1.9"), TokenID: "t1"}}, fsm.CodeConflict},
		{"delete app in use", &fsm.Command{Type: fsm.CmdDeleteApp, Name: "web"}, fsm.CodeConflict},
		{"unknown installation", &fsm.Command{Type: fsm.CmdDeleteInstallation, Name: "nope"}, fsm.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := fsmtest.Apply(t, f, tc.cmd)
			require.Error(t, res.Err)
			require.Equal(t, tc.code, fsm.CodeOf(res.Err), res.Err.Error())
			st := f.State()
			require.Equal(t, before.Hosts, st.Hosts)
			require.Equal(t, before.Instances, st.Instances)
			require.Equal(t, before.Installations, st.Installations)
			require.Equal(t, before.Apps, st.Apps)
		})
	}
}
