package fsm

import (
	"bytes"
	"encoding/json"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

func apply(t *testing.T, f *FSM, index uint64, c *Command) Result {
	t.Helper()
	c.Time = time.Date(2026, 1, 1, 0, 0, int(index), 0, time.UTC)
	data, err := json.Marshal(c)
	require.NoError(t, err)
	return f.Apply(&raft.Log{Index: index, Data: data}).(Result)
}

func script() []*Command {
	host := func(id, name string, role Role, addr string) *Command {
		return &Command{Type: CmdRegisterHost, RequestID: "reg-" + id, Host: &Host{
			ID: id, Name: name, Role: role, PublicKey: "key-" + id, TunnelAddr: netip.MustParseAddr(addr), TokenID: "t1",
			Status: HostReady, Capacity: Resources{MilliCPU: 2000, MemoryMB: 2048, DiskMB: 1000},
		}}
	}
	return []*Command{
		{Type: CmdSetOperatorToken, OperatorTokenHash: "abc"},
		{Type: CmdCreateToken, RequestID: "tok", Token: &JoinToken{ID: "t1", Hash: "h1"}},
		host("h1", "back1", RoleBack, "100.64.1.1"),
		host("h2", "back2", RoleBack, "100.64.1.2"),
		host("h3", "front1", RoleFront, "100.64.1.3"),
		{Type: CmdCreateApp, RequestID: "app", App: &App{Name: "web", Image: "x:1", ContainerPort: 80}},
		{Type: CmdCreateInstallation, RequestID: "inst", Installation: &Installation{
			Name: "site", App: "web", Fronts: 1, Backs: 2, Domain: "site.example", ContainerPort: 80,
			PerInstance: Resources{MilliCPU: 500, MemoryMB: 256, DiskMB: 10}, FrontHosts: []string{"h3"}, Env: map[string]string{"B": "2", "A": "1"},
		}, Instances: []*Instance{
			{ID: "i1", Installation: "site", HostID: "h1", Port: 5000},
			{ID: "i2", Installation: "site", HostID: "h2", Port: 5000},
		}},
		{Type: CmdPlan, Plan: &Plan{Update: []InstanceUpdate{{ID: "i1", State: InstanceRunning}}}},
	}
}

func TestApplyIsDeterministicAndSnapshotRestores(t *testing.T) {
	a, b := New(), New()
	for i, c := range script() {
		ra := apply(t, a, uint64(i+1), c)
		rb := apply(t, b, uint64(i+1), c)
		require.NoError(t, ra.Err)
		require.Equal(t, ra, rb)
	}
	ja, err := json.Marshal(a.State())
	require.NoError(t, err)
	jb, err := json.Marshal(b.State())
	require.NoError(t, err)
	require.Equal(t, string(ja), string(jb), "same log, same bytes")

	snap, err := a.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	c := New()
	require.NoError(t, c.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	jc, err := json.Marshal(c.State())
	require.NoError(t, err)
	require.Equal(t, string(ja), string(jc))
}

func TestRequestIDIsAppliedOnce(t *testing.T) {
	f := New()
	cmds := script()
	for i, c := range cmds {
		require.NoError(t, apply(t, f, uint64(i+1), c).Err)
	}
	before, err := json.Marshal(f.State().Instances)
	require.NoError(t, err)
	// The same installation command again (a client retry after an
	// indeterminate outcome): answered from the record, nothing applied.
	res := apply(t, f, 100, cmds[6])
	require.True(t, res.Replayed)
	require.NoError(t, res.Err)
	require.Equal(t, "site", res.Ref)
	after, err := json.Marshal(f.State().Instances)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after))
}

func TestRejectedCommandChangesNothing(t *testing.T) {
	f := New()
	for i, c := range script() {
		require.NoError(t, apply(t, f, uint64(i+1), c).Err)
	}
	before := f.State()
	cases := []struct {
		name string
		cmd  *Command
		code Code
	}{
		{"port used twice", &Command{Type: CmdPlan, Plan: &Plan{
			Installations: []InstallationUpdate{{Name: "site", Fronts: 1, Backs: 3, FrontHosts: []string{"h3"}}},
			Add:           []*Instance{{ID: "i3", Installation: "site", HostID: "h1", Port: 5000}},
		}}, CodeConflict},
		{"beyond capacity", &Command{Type: CmdCreateInstallation, Installation: &Installation{
			Name: "big", App: "web", Fronts: 1, Backs: 1, Domain: "big.example", PerInstance: Resources{MilliCPU: 1800}, FrontHosts: []string{"h3"},
		}, Instances: []*Instance{{ID: "i9", Installation: "big", HostID: "h1", Port: 5001}}}, CodeConflict},
		{"port out of range", &Command{Type: CmdCreateInstallation, Installation: &Installation{
			Name: "odd", App: "web", Fronts: 1, Backs: 1, Domain: "odd.example", FrontHosts: []string{"h3"},
		}, Instances: []*Instance{{ID: "i8", Installation: "odd", HostID: "h1", Port: 80}}}, CodeInvalid},
		{"duplicate key", &Command{Type: CmdRegisterHost, Host: &Host{ID: "h9", Name: "other", Role: RoleBack, PublicKey: "key-h1", TunnelAddr: netip.MustParseAddr("100.64.1.9"), TokenID: "t1"}}, CodeConflict},
		{"delete app in use", &Command{Type: CmdDeleteApp, Name: "web"}, CodeConflict},
		{"unknown installation", &Command{Type: CmdDeleteInstallation, Name: "nope"}, CodeNotFound},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := apply(t, f, uint64(200+i), tc.cmd)
			require.Error(t, res.Err)
			require.Equal(t, tc.code, CodeOf(res.Err), res.Err.Error())
			st := f.State()
			require.Equal(t, before.Hosts, st.Hosts)
			require.Equal(t, before.Instances, st.Instances)
			require.Equal(t, before.Installations, st.Installations)
			require.Equal(t, before.Apps, st.Apps)
		})
	}
}

// Hosts registered without an address get the allocator's next one; a
// decommissioned host's address is not handed to the next host (the core
// keeps the old peer for a grace period, and a shared address would clash);
// the allocator survives a snapshot.
func TestTunnelAddressesAreAllocatedNextFit(t *testing.T) {
	f := New()
	idx := uint64(0)
	run := func(c *Command) Result {
		idx++
		res := apply(t, f, idx, c)
		require.NoError(t, res.Err)
		return res
	}
	reg := func(id string) netip.Addr {
		run(&Command{Type: CmdRegisterHost, RequestID: "reg-" + id, Host: &Host{ID: id, Name: id, Role: RoleBack,
			PublicKey: "key-" + id, TokenID: "t1", Status: HostReady, Capacity: Resources{MilliCPU: 1000, MemoryMB: 512, DiskMB: 100}}})
		return f.State().Hosts[id].TunnelAddr
	}
	run(&Command{Type: CmdCreateToken, RequestID: "tok", Token: &JoinToken{ID: "t1", Hash: "h1"}})
	run(&Command{Type: CmdUpsertCoreNode, CoreNode: &CoreNode{ID: "core1", TunnelAddr: netip.MustParseAddr("100.64.1.2")}})

	require.Equal(t, "100.64.1.1", reg("a").String())
	require.Equal(t, "100.64.1.3", reg("b").String(), "a core node's address is skipped")
	run(&Command{Type: CmdPlan, Plan: &Plan{Hosts: []HostStatusChange{{HostID: "a", Status: HostDecommissioned}}}})
	require.Equal(t, "100.64.1.4", reg("c").String(), "the freed 100.64.1.1 is not reused at once")

	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	g := New()
	require.NoError(t, g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))))
	f = g
	require.Equal(t, "100.64.1.5", reg("d").String(), "a restored node continues where the original was")
}
