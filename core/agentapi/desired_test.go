package agentapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// TestDesiredStatesFollowEveryChange: through adds, moves, deletions,
// status changes, Front changes, a manual certificate, a core node and a
// host's removal, applied one at a time and several between two steps of
// the follower, every host's desired state as the handler serves it
// (through its index, its cache and the follower's wake-ups) equals the
// desired state computed by a plain walk over the state, in the newest
// state and in the one before it, and its answer's body is byte for byte
// that desired state's JSON.
func TestDesiredStatesFollowEveryChange(t *testing.T) {
	f := fsm.New()
	apply := func(c *fsm.Command) {
		t.Helper()
		require.NoError(t, fsmtest.Apply(t, f, c).Err, "%s", c.Type)
	}
	apply(&fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "t", Hash: "h"}})
	hosts := []string{"f1", "f2", "b1", "b2", "b3", "b4"}
	for i, id := range hosts {
		role := fsm.RoleBack
		if id[0] == 'f' {
			role = fsm.RoleFront
		}
		apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: id, Name: id, Role: role, PublicKey: "key-" + id, TunnelAddr: netip.AddrFrom4([4]byte{100, 64, 1, byte(1 + i)}),
			TokenID: "t", Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 4000, DiskMB: 4000},
		}})
	}
	apply(&fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "web", Image: "web:1", ContainerPort: 80}})
	h := New(Config{State: held{f}, Context: t.Context()})
	h.watch.ensure()

	inst := func(name string, fronts []string, backs ...string) *fsm.Command {
		c := &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{
			Name: name, App: "web", Fronts: len(fronts), Backs: len(backs), Domain: name + ".example", ContainerPort: 80,
			PerInstance: fsm.Resources{MilliCPU: 100, MemoryMB: 64}, FrontHosts: fronts,
		}}
		for i, b := range backs {
			c.Instances = append(c.Instances, &fsm.Instance{ID: fmt.Sprintf("%s-%d", name, i), Installation: name, HostID: b, Port: 5000 + i})
		}
		return c
	}
	plan := func(p fsm.Plan) *fsm.Command { return &fsm.Command{Type: fsm.CmdPlan, Plan: &p} }
	status := func(id string, s fsm.HostStatus) *fsm.Command {
		return plan(fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: id, Status: s}}})
	}
	// Each group is applied before the follower's next step.
	groups := [][]*fsm.Command{
		{inst("one", []string{"f1"}, "b1", "b2")},
		{inst("two", []string{"f2"}, "b3"), inst("three", []string{"f1", "f2"}, "b2", "b4")},
		{plan(fsm.Plan{Update: []fsm.InstanceUpdate{{ID: "one-0", State: fsm.InstanceRunning}}})},
		// A move: one-0 leaves b1 for b4.
		{plan(fsm.Plan{Remove: []string{"one-0"}, Add: []*fsm.Instance{{ID: "one-9", Installation: "one", HostID: "b4", Port: 5009}}})},
		{status("b2", fsm.HostDown)},
		// b4 restarts with the HTTP gateway: the Fronts of its instances pipeline to them.
		{{Type: fsm.CmdSetHostAnnounced, Host: &fsm.Host{ID: "b4", HTTPGateway: true}}},
		{status("b2", fsm.HostReady), plan(fsm.Plan{Update: []fsm.InstanceUpdate{{ID: "three-1", State: fsm.InstanceRunning}}})},
		{plan(fsm.Plan{Installations: []fsm.InstallationUpdate{{Name: "two", Fronts: 1, Backs: 1, FrontHosts: []string{"f1"}}}})},
		{{Type: fsm.CmdSetInstallationTLS, Cert: &fsm.CertCommand{Key: "one", TLS: &fsm.TLSOptions{Mode: fsm.TLSManual}}}},
		{{Type: fsm.CmdCertPut, Cert: &fsm.CertCommand{Key: "manual/one.example/cert.pem", Value: []byte("cert 1")}}},
		{{Type: fsm.CmdPushAppVersion, App: &fsm.App{Name: "web", Image: "web:2", ContainerPort: 80}}},
		{{Type: fsm.CmdRetireInstallation, Name: "two"}, {Type: fsm.CmdDeleteInstallation, Name: "two"}},
		// b3 lost its only instance with "two"; b2 is drained and removed.
		{plan(fsm.Plan{Remove: []string{"one-1", "three-0"}, Add: []*fsm.Instance{
			{ID: "one-8", Installation: "one", HostID: "b3", Port: 5008}, {ID: "three-8", Installation: "three", HostID: "b1", Port: 5018}}})},
		{status("b2", fsm.HostDecommissioned)},
		{status("f2", fsm.HostDown)},
		{{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{ID: "core1", PublicKey: "key-core1", TunnelAddr: netip.MustParseAddr("100.64.0.1"), AgentPort: 7400}}},
		{plan(fsm.Plan{Update: []fsm.InstanceUpdate{{ID: "one-9", State: fsm.InstanceRunning}}})},
	}
	check := func(st *fsm.State, when string) {
		t.Helper()
		ix := h.watch.indexOf(st)
		for _, id := range hosts {
			host := st.Hosts[id]
			want := walkDesired(st, host)
			var body bytes.Buffer
			require.NoError(t, json.NewEncoder(&body).Encode(want))
			for round := range 2 { // computed, then cached
				require.Equal(t, want, h.watch.desiredOf(ix, host), "%s: %s, round %d", when, id, round)
				rec := httptest.NewRecorder()
				h.writeDesired(rec, ix, host)
				require.Equal(t, body.String(), rec.Body.String(), "%s: %s's answer, round %d", when, id, round)
			}
		}
	}
	check(f.State(), "start")
	prev := f.State()
	for i, g := range groups {
		for _, c := range g {
			apply(c)
		}
		h.watch.step(f.State())
		when := fmt.Sprintf("after group %d (%s)", i, g[0].Type)
		check(f.State(), when)
		check(prev, when+", the state before")
		prev = f.State()
	}
}

// walkDesired is a host's desired state computed by walking the whole
// state, the way the handler did before it had an index: the reference
// the indexed and cached path must match.
func walkDesired(st *fsm.State, host *fsm.Host) agentproto.DesiredState {
	d := agentproto.DesiredState{Index: st.Index, Host: wireHost(host), Peers: []agentproto.Peer{}, Instances: []agentproto.Instance{}, Routes: []agentproto.Route{}}
	for _, c := range st.SortedCoreNodes() {
		if c.PublicKey != "" && c.TunnelAddr.IsValid() {
			d.Peers = append(d.Peers, agentproto.Peer{Name: c.ID, Role: agentproto.RoleCore, PublicKey: c.PublicKey, TunnelAddr: c.TunnelAddr.String(), Endpoint: c.MeshEndpoint, Hub: true,
				AgentURL: "http://" + netip.AddrPortFrom(c.TunnelAddr, c.AgentPort).String()})
		}
	}
	seen := map[string]bool{}
	peer := func(o *fsm.Host) {
		if o == nil || o.ID == host.ID || seen[o.ID] || o.Status == fsm.HostDecommissioned {
			return
		}
		seen[o.ID] = true
		p := agentproto.Peer{Name: o.Name, Role: string(o.Role), PublicKey: o.PublicKey, TunnelAddr: o.TunnelAddr.String()}
		if o.Role == fsm.RoleFront {
			p.Endpoint, p.Hub = o.Endpoint, true
		}
		d.Peers = append(d.Peers, p)
	}
	for _, inst := range st.SortedInstallations() {
		instances := st.SortedInstances()
		instances = slices.DeleteFunc(instances, func(in *fsm.Instance) bool { return in.Installation != inst.Name })
		switch host.Role {
		case fsm.RoleFront:
			if !slices.Contains(inst.FrontHosts, host.ID) {
				continue
			}
			r := agentproto.Route{Installation: inst.Name, Domain: inst.Domain, Backends: []agentproto.Backend{}, TLS: routeTLS(st, inst)}
			for _, in := range instances {
				b := st.Hosts[in.HostID]
				if b == nil || (b.Status != fsm.HostReady && b.Status != fsm.HostDraining) || in.State == fsm.InstanceLost {
					continue
				}
				peer(b)
				r.Backends = append(r.Backends, agentproto.Backend{InstanceID: in.ID, Address: netip.AddrPortFrom(b.TunnelAddr, uint16(in.Port)).String(), State: in.State, Pipeline: b.HTTPGateway})
			}
			d.Routes = append(d.Routes, r)
		case fsm.RoleBack:
			mine := slices.DeleteFunc(instances, func(in *fsm.Instance) bool { return in.HostID != host.ID })
			if len(mine) == 0 {
				continue
			}
			var allowed []string
			for _, id := range inst.FrontHosts {
				if fh := st.Hosts[id]; fh != nil {
					peer(fh)
					allowed = append(allowed, fh.TunnelAddr.String())
				}
			}
			sort.Strings(allowed)
			for _, in := range mine {
				rel := st.InstanceRelease(in)
				ai := agentproto.Instance{ID: in.ID, Installation: inst.Name, App: rel.App, Port: in.Port, ContainerPort: rel.ContainerPort,
					MilliCPU: rel.PerInstance.MilliCPU, MemoryMB: rel.PerInstance.MemoryMB, Env: rel.Env,
					AllowedFrom: allowed, State: in.State, Release: rel.Version, Health: wireHealth(rel.Health)}
				if app := st.Apps[rel.App]; app != nil {
					if v, ok := app.At(rel.AppVersion); ok {
						ai.Image, ai.Digest = v.Image, v.Digest
						if v.Digest != "" {
							ai.BlobPath, ai.ImageUncompressedBytes = agentproto.PathBlobs+v.Digest, v.UncompressedSize
						}
					}
				}
				d.Instances = append(d.Instances, ai)
			}
		}
	}
	return d
}

// TestDesiredCacheIsPerHost: a change to one Back's instance leaves the
// cached desired state of an unrelated Back in place (it is served from
// the cache in the new state) and drops the changed Back's.
func TestDesiredCacheIsPerHost(t *testing.T) {
	f := loadedFleet(t, 100)
	h := New(Config{State: held{f}, Context: t.Context()})
	h.watch.ensure()
	st := f.State()
	ix := h.watch.indexOf(st)
	for _, id := range []string{"h-00001", "h-00002"} {
		h.watch.desiredOf(ix, st.Hosts[id])
		require.NotNil(t, h.watch.cached(ix, id))
	}
	on := st.Usage().On("h-00001")
	require.NotEmpty(t, on)
	require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Update: []fsm.InstanceUpdate{{ID: on[0].ID, State: fsm.InstanceRunning}}}}).Err)
	h.watch.step(f.State())
	next := h.watch.indexOf(f.State())
	require.Nil(t, h.watch.cached(next, "h-00001"), "the changed Back's desired state is recomputed")
	require.NotNil(t, h.watch.cached(next, "h-00002"), "an unrelated Back's is served from the cache")
	for _, id := range []string{"h-00001", "h-00002"} {
		got, err := json.Marshal(h.watch.desiredOf(next, next.st.Hosts[id]))
		require.NoError(t, err)
		want, err := json.Marshal(walkDesired(next.st, next.st.Hosts[id]))
		require.NoError(t, err)
		require.JSONEq(t, string(want), string(got), id)
	}
}
