package agentapi

import (
	"reflect"
	"sort"

	"potluck/core/fsm"
)

// index holds lookups derived from one published (immutable) state, so that
// a host's desired state costs what that host holds, not a walk over every
// installation and instance of the fleet.
type index struct {
	st       *fsm.State
	byKey    map[string]*fsm.Host       // WireGuard key -> host (lowest id, as State.HostByKey)
	ofInst   map[string][]*fsm.Instance // installation -> its instances, by id
	backOf   map[string][]string        // Back host id -> installations with an instance on it, sorted
	frontOf  map[string][]string        // Front host id -> installations it fronts, sorted
	backsFor map[string][]string        // installation -> hosts of its instances, sorted, unique
}

func newIndex(st *fsm.State) *index {
	ix := &index{
		st:       st,
		byKey:    make(map[string]*fsm.Host, len(st.Hosts)),
		ofInst:   make(map[string][]*fsm.Instance, len(st.Installations)),
		backOf:   map[string][]string{},
		frontOf:  map[string][]string{},
		backsFor: make(map[string][]string, len(st.Installations)),
	}
	for id, h := range st.Hosts {
		if o := ix.byKey[h.PublicKey]; o == nil || id < o.ID {
			ix.byKey[h.PublicKey] = h
		}
	}
	for _, in := range st.Instances {
		ix.ofInst[in.Installation] = append(ix.ofInst[in.Installation], in)
	}
	names := make([]string, 0, len(st.Installations))
	for name := range st.Installations {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		list := ix.ofInst[name]
		sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
		seen := map[string]bool{}
		for _, in := range list {
			if !seen[in.HostID] {
				seen[in.HostID] = true
				ix.backOf[in.HostID] = append(ix.backOf[in.HostID], name)
				ix.backsFor[name] = append(ix.backsFor[name], in.HostID)
			}
		}
		sort.Strings(ix.backsFor[name])
		fseen := map[string]bool{}
		for _, f := range st.Installations[name].FrontHosts {
			if !fseen[f] {
				fseen[f] = true
				ix.frontOf[f] = append(ix.frontOf[f], name)
			}
		}
	}
	return ix
}

// installationsOf are the installations in a host's desired state, sorted.
func (ix *index) installationsOf(h *fsm.Host) []string {
	switch h.Role {
	case fsm.RoleFront:
		return ix.frontOf[h.ID]
	case fsm.RoleBack:
		return ix.backOf[h.ID]
	}
	return nil
}

// changedHosts returns the hosts whose desired state may differ between the
// states of old and cur, a superset: a woken query still compares the
// desired state itself. all is true when every host may be concerned (a
// core node changed, or there is nothing to compare with).
func changedHosts(old, cur *index) (dirty map[string]bool, all bool) {
	if old == nil {
		return nil, true
	}
	a, b := old.st, cur.st
	if !sameCoreNodes(a, b) {
		return nil, true
	}
	dirty = map[string]bool{}
	mark := func(ids []string) {
		for _, id := range ids {
			dirty[id] = true
		}
	}
	installation := func(name string) {
		for _, ix := range []*index{old, cur} {
			mark(ix.frontsOf(name))
			mark(ix.backsFor[name])
		}
	}
	instance := func(in *fsm.Instance) {
		dirty[in.HostID] = true
		for _, ix := range []*index{old, cur} {
			mark(ix.frontsOf(in.Installation))
		}
	}
	// A host's own record, and the peers that list it (the Backs of the
	// installations a Front fronts, the Fronts of those a Back runs).
	host := func(id string) {
		dirty[id] = true
		for _, ix := range []*index{old, cur} {
			for _, name := range ix.frontOf[id] {
				mark(ix.backsFor[name])
			}
			for _, name := range ix.backOf[id] {
				mark(ix.frontsOf(name))
			}
		}
	}
	for id, h := range b.Hosts {
		if o := a.Hosts[id]; o == nil || *wireHost(o) != *wireHost(h) {
			host(id)
		}
	}
	for id := range a.Hosts {
		if b.Hosts[id] == nil {
			host(id)
		}
	}
	for id, in := range b.Instances {
		if o := a.Instances[id]; o == nil || *o != *in {
			instance(in)
			if o != nil {
				instance(o)
			}
		}
	}
	for id, o := range a.Instances {
		if b.Instances[id] == nil {
			instance(o)
		}
	}
	for name, inst := range b.Installations {
		if o := a.Installations[name]; o == nil || !reflect.DeepEqual(o, inst) {
			installation(name)
		}
	}
	for name := range a.Installations {
		if b.Installations[name] == nil {
			installation(name)
		}
	}
	// An app's versions give instances their image: every installation
	// with a release of a changed app is concerned.
	apps := map[string]bool{}
	for name, app := range b.Apps {
		if o := a.Apps[name]; o == nil || !reflect.DeepEqual(o, app) {
			apps[name] = true
		}
	}
	for name := range a.Apps {
		if b.Apps[name] == nil {
			apps[name] = true
		}
	}
	if len(apps) > 0 {
		for _, st := range []*fsm.State{a, b} {
			for name, inst := range st.Installations {
				if usesApp(inst, apps) {
					installation(name)
				}
			}
		}
	}
	return dirty, false
}

// frontsOf are the Front hosts of an installation in the indexed state.
func (ix *index) frontsOf(name string) []string {
	if inst := ix.st.Installations[name]; inst != nil {
		return inst.FrontHosts
	}
	return nil
}

func usesApp(inst *fsm.Installation, apps map[string]bool) bool {
	if apps[inst.App] {
		return true
	}
	for _, r := range inst.Releases {
		if apps[r.App] {
			return true
		}
	}
	return false
}

// sameCoreNodes reports whether the core nodes as agents see them (their
// peers) are the same in a and b.
func sameCoreNodes(a, b *fsm.State) bool {
	if len(a.CoreNodes) != len(b.CoreNodes) {
		return false
	}
	for id, c := range b.CoreNodes {
		o := a.CoreNodes[id]
		if o == nil || o.PublicKey != c.PublicKey || o.TunnelAddr != c.TunnelAddr || o.MeshEndpoint != c.MeshEndpoint || o.AgentPort != c.AgentPort {
			return false
		}
	}
	return true
}
