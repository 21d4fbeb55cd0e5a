package agentapi

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// TestChangedHostsCoversEveryDesiredChange: after each command of a
// sequence that touches hosts, instances, installations, releases, apps and
// core nodes, every host whose desired state changed is among the hosts the
// watch wakes (a superset is fine; a host left out would miss its update).
func TestChangedHostsCoversEveryDesiredChange(t *testing.T) {
	f := fsm.New()
	apply := func(c *fsm.Command) {
		t.Helper()
		require.NoError(t, fsmtest.Apply(t, f, c).Err, "%s", c.Type)
	}
	apply(&fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "t", Hash: "h"}})
	hosts := []struct {
		id   string
		role fsm.Role
	}{{"f1", fsm.RoleFront}, {"f2", fsm.RoleFront}, {"b1", fsm.RoleBack}, {"b2", fsm.RoleBack}, {"b3", fsm.RoleBack}}
	for i, h := range hosts {
		apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: h.id, Name: h.id, Role: h.role, PublicKey: "key-" + h.id, TunnelAddr: netip.AddrFrom4([4]byte{100, 64, 1, byte(1 + i)}),
			TokenID: "t", Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 4000, DiskMB: 4000},
		}})
	}
	inst := func(name, front string, backs ...string) *fsm.Command {
		c := &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{
			Name: name, App: "web", Fronts: 1, Backs: len(backs), Domain: name + ".example", ContainerPort: 80,
			PerInstance: fsm.Resources{MilliCPU: 100, MemoryMB: 64}, FrontHosts: []string{front},
		}}
		for i, b := range backs {
			c.Instances = append(c.Instances, &fsm.Instance{ID: fmt.Sprintf("%s-%d", name, i), Installation: name, HostID: b, Port: 5000 + i})
		}
		return c
	}
	steps := []*fsm.Command{
		{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "web", Image: "web:1", ContainerPort: 80}},
		{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "other", Image: "other:1", ContainerPort: 80}},
		inst("one", "f1", "b1", "b2"),
		inst("two", "f2", "b3"),
		{Type: fsm.CmdPlan, Plan: &fsm.Plan{Update: []fsm.InstanceUpdate{{ID: "one-0", State: fsm.InstanceRunning}}}},
		// A manual certificate's upload and replacement change the
		// route of its domain's Fronts (ManualModified).
		{Type: fsm.CmdSetInstallationTLS, Cert: &fsm.CertCommand{Key: "one", TLS: &fsm.TLSOptions{Mode: fsm.TLSManual}}},
		{Type: fsm.CmdCertPut, Cert: &fsm.CertCommand{Key: "manual/one.example/cert.pem", Value: []byte("cert 1")}},
		{Type: fsm.CmdCertPut, Cert: &fsm.CertCommand{Key: "manual/one.example/cert.pem", Value: []byte("cert 2")}},
		{Type: fsm.CmdCertDelete, Cert: &fsm.CertCommand{Key: "manual/one.example/cert.pem"}},
		{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: "b2", Status: fsm.HostDown}}}},
		{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: "b2", Status: fsm.HostReady}}}},
		{Type: fsm.CmdPlan, Plan: &fsm.Plan{Installations: []fsm.InstallationUpdate{{Name: "two", Fronts: 1, Backs: 1, FrontHosts: []string{"f1"}}}}},
		{Type: fsm.CmdPushAppVersion, App: &fsm.App{Name: "web", Image: "web:2", ContainerPort: 80}},
		{Type: fsm.CmdDeployRelease, Name: "one", Release: &fsm.Release{Version: 2, App: "web", AppVersion: 2, PerInstance: fsm.Resources{MilliCPU: 100, MemoryMB: 64}, ContainerPort: 80},
			Instances: []*fsm.Instance{{ID: "one-r2", Installation: "one", HostID: "b3", Port: 5010, Release: 2}, {ID: "one-r2b", Installation: "one", HostID: "b1", Port: 5011, Release: 2}}},
		{Type: fsm.CmdPromoteRelease, Name: "one", Release: &fsm.Release{Version: 2}},
		{Type: fsm.CmdPlan, Plan: &fsm.Plan{Remove: []string{"one-0", "one-1"}}},
		{Type: fsm.CmdSetHostPublicURL, Host: &fsm.Host{ID: "f2", PublicURL: "http://f2.example"}},
		{Type: fsm.CmdRetireInstallation, Name: "two"},
		{Type: fsm.CmdDeleteInstallation, Name: "two"},
		{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: "f2", Status: fsm.HostDecommissioned}}}},
		{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{ID: "core1", PublicKey: "key-core1", TunnelAddr: netip.MustParseAddr("100.64.0.1"), AgentPort: 7400}},
	}
	for _, c := range steps {
		before := newIndex(f.State())
		apply(c)
		after := newIndex(f.State())
		ch := changedHosts(before, after)
		for _, h := range hosts {
			if fingerprintOf(before, h.id) != fingerprintOf(after, h.id) {
				require.True(t, ch.all || ch.dirty[h.id], "%s changed %s's desired state but would not wake it", c.Type, h.id)
			}
		}
	}
}

// TestChangedHostsLeavesUnrelatedHostsAlone: an instance of one Back
// changing wakes that Back and the Front routing to it, nobody else.
func TestChangedHostsLeavesUnrelatedHostsAlone(t *testing.T) {
	st := fsm.NewState()
	for _, id := range []string{"f1", "f2", "b1", "b2"} {
		role := fsm.RoleBack
		if id[0] == 'f' {
			role = fsm.RoleFront
		}
		st.Hosts[id] = &fsm.Host{ID: id, Name: id, Role: role, PublicKey: "key-" + id, Status: fsm.HostReady}
	}
	st.Apps["web"] = &fsm.App{Name: "web", Image: "web:1"}
	st.Installations["one"] = &fsm.Installation{Name: "one", App: "web", FrontHosts: []string{"f1"}}
	st.Installations["two"] = &fsm.Installation{Name: "two", App: "web", FrontHosts: []string{"f2"}}
	st.Instances["i1"] = &fsm.Instance{ID: "i1", Installation: "one", HostID: "b1", Port: 5000}
	st.Instances["i2"] = &fsm.Instance{ID: "i2", Installation: "two", HostID: "b2", Port: 5000}
	next := st.Clone()
	next.Index++
	next.Instances["i1"].State = fsm.InstanceRunning
	c := changedHosts(newIndex(st), newIndex(next))
	require.False(t, c.all)
	require.Equal(t, map[string]bool{"b1": true, "f1": true}, c.dirty)
}

// fingerprintOf is a host's desired state in ix's state as JSON, apart
// from the index, computed afresh.
func fingerprintOf(ix *index, hostID string) string {
	h := ix.st.Hosts[hostID]
	if h == nil {
		return ""
	}
	d := desired(ix, h)
	d.Index = 0
	data, err := json.Marshal(d)
	if err != nil {
		panic(err)
	}
	return string(data)
}
