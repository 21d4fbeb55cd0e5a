package agentapi

import (
	"reflect"
	"sort"
	"sync"

	"potluck/core/fsm"
)

// index answers the lookups of desired states for one published (immutable)
// state, so that a host's desired state costs what that host holds, not a
// walk over every installation and instance of the fleet. Making one is
// O(1): instances per host and per installation come from the usage index
// the FSM keeps with every state it publishes (fsm.Usage), and what the
// index derives from them it derives lazily, once per state, for the
// queries that ask, shared by all of them. (It used to be built whole for
// every published state, O(hosts + instances): at 1,000 hosts that was a
// third of the leader's CPU while creating.)
type index struct {
	st  *fsm.State
	use fsm.Usage

	mu      sync.Mutex
	ofInst  map[string][]*fsm.Instance // installation -> its instances by id, as far as asked
	frontOf map[string][]string        // Front host id -> installations it fronts, sorted; nil until asked
}

func newIndex(st *fsm.State) *index {
	return &index{st: st, use: st.Usage(), ofInst: map[string][]*fsm.Instance{}}
}

// instancesOf are the instances of an installation, ordered by id.
func (ix *index) instancesOf(name string) []*fsm.Instance {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	list, ok := ix.ofInst[name]
	if !ok {
		list = ix.use.Of(name)
		ix.ofInst[name] = list
	}
	return list
}

// frontsOf are the installations a Front host fronts, sorted.
func (ix *index) frontsOf(hostID string) []string {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.frontOf == nil {
		ix.frontOf = buildFrontOf(ix.st)
	}
	return ix.frontOf[hostID]
}

// buildFrontOf maps each Front to the installations it fronts (sorted):
// O(installations), a small map beside the instances.
func buildFrontOf(st *fsm.State) map[string][]string {
	names := make([]string, 0, len(st.Installations))
	for name := range st.Installations {
		names = append(names, name)
	}
	sort.Strings(names)
	out := map[string][]string{}
	for _, name := range names {
		seen := map[string]bool{}
		for _, f := range st.Installations[name].FrontHosts {
			if !seen[f] {
				seen[f] = true
				out[f] = append(out[f], name)
			}
		}
	}
	return out
}

// inheritFronts gives ix the Front map of old when the installations are
// the same in both states (what the map is made of).
func (ix *index) inheritFronts(old *index) {
	old.mu.Lock()
	fronts := old.frontOf
	old.mu.Unlock()
	if fronts == nil {
		return
	}
	ix.mu.Lock()
	if ix.frontOf == nil {
		ix.frontOf = fronts // never changed once built: shared
	}
	ix.mu.Unlock()
}

// backOf are the installations with an instance on a Back, sorted, and its
// instances ordered by installation, then id.
func (ix *index) backOf(hostID string) (names []string, on []*fsm.Instance) {
	on = ix.use.On(hostID) // a fresh slice, ordered by id
	sort.SliceStable(on, func(i, j int) bool { return on[i].Installation < on[j].Installation })
	for i, in := range on {
		if (i == 0 || on[i-1].Installation != in.Installation) && ix.st.Installations[in.Installation] != nil {
			names = append(names, in.Installation)
		}
	}
	return names, on
}

// hostsRunning are the hosts with an instance of an installation.
func (ix *index) hostsRunning(name string) []string {
	var out []string
	seen := map[string]bool{}
	for _, in := range ix.instancesOf(name) {
		if !seen[in.HostID] {
			seen[in.HostID] = true
			out = append(out, in.HostID)
		}
	}
	return out
}

// frontHosts are the Front hosts of an installation in the indexed state.
func (ix *index) frontHosts(name string) []string {
	if inst := ix.st.Installations[name]; inst != nil {
		return inst.FrontHosts
	}
	return nil
}

// change is what a state change may concern.
type change struct {
	// dirty are the hosts whose desired state may differ between the two
	// states, a superset: a woken query still compares the desired state.
	dirty map[string]bool
	// all is true when every host may be concerned (a core node changed,
	// or there is nothing to compare with).
	all bool
	// sameInstallations is true when no installation changed.
	sameInstallations bool
}

// changedHosts works out which hosts' desired states may differ between
// the states of old and cur. Hosts and instances: those the FSM says the
// batches between wrote (fsm.State.ChangedSince), or a walk of both maps
// when it cannot say. The rest compares by pointer first: entities a
// command did not touch are shared between the two states (copy-on-write).
func changedHosts(old, cur *index) change {
	if old == nil {
		return change{all: true}
	}
	a, b := old.st, cur.st
	if !sameCoreNodes(a, b) {
		return change{all: true}
	}
	dirty := map[string]bool{}
	mark := func(ids []string) {
		for _, id := range ids {
			dirty[id] = true
		}
	}
	installation := func(name string) {
		for _, ix := range []*index{old, cur} {
			mark(ix.frontHosts(name))
			mark(ix.hostsRunning(name))
		}
	}
	instance := func(in *fsm.Instance) {
		dirty[in.HostID] = true
		for _, ix := range []*index{old, cur} {
			mark(ix.frontHosts(in.Installation))
		}
	}
	// A host's own record, and the peers that list it (the Backs of the
	// installations a Front fronts, the Fronts of those a Back runs).
	host := func(id string) {
		dirty[id] = true
		for _, ix := range []*index{old, cur} {
			for _, name := range ix.frontsOf(id) {
				mark(ix.hostsRunning(name))
			}
			names, _ := ix.backOf(id)
			for _, name := range names {
				mark(ix.frontHosts(name))
			}
		}
	}
	hostChanged := func(id string) {
		if o, h := a.Hosts[id], b.Hosts[id]; o != h && (o == nil || h == nil || *wireHost(o) != *wireHost(h)) {
			host(id)
		}
	}
	instanceChanged := func(id string) {
		if o, in := a.Instances[id], b.Instances[id]; o != in && (o == nil || in == nil || *o != *in) {
			if in != nil {
				instance(in)
			}
			if o != nil {
				instance(o)
			}
		}
	}
	// The FSM says which hosts and instances the commands between the two
	// states wrote: look at those only. Without that (a restore between
	// them, or old too far behind), compare the maps whole.
	if hosts, instances, ok := b.ChangedSince(a); ok {
		for _, id := range hosts {
			hostChanged(id)
		}
		for _, id := range instances {
			instanceChanged(id)
		}
	} else {
		eachKey(a.Hosts, b.Hosts, hostChanged)
		eachKey(a.Instances, b.Instances, instanceChanged)
	}
	same := len(a.Installations) == len(b.Installations)
	for name, inst := range b.Installations {
		if o := a.Installations[name]; o != inst && (o == nil || !reflect.DeepEqual(o, inst)) {
			installation(name)
			same = false
		}
	}
	if !same {
		for name := range a.Installations {
			if b.Installations[name] == nil {
				installation(name)
			}
		}
	}
	// An app's versions give instances their image: every installation
	// with a release of a changed app is concerned.
	apps := map[string]bool{}
	if !sameMap(a.Apps, b.Apps) {
		for name, app := range b.Apps {
			if o := a.Apps[name]; o != app && (o == nil || !reflect.DeepEqual(o, app)) {
				apps[name] = true
			}
		}
		for name := range a.Apps {
			if b.Apps[name] == nil {
				apps[name] = true
			}
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
	// A Front's route tells it when the manual certificate of its domain
	// changed (routeTLS): the certificate store is part of its desired
	// state.
	if !sameMap(a.Certs, b.Certs) {
		for name, inst := range b.Installations {
			if t := routeTLS(b, inst); t != nil && t.ManualKey != "" {
				if o := a.Certs[t.ManualKey]; o == nil || o.Modified != t.ManualModified {
					installation(name)
				}
			}
		}
	}
	return change{dirty: dirty, sameInstallations: same}
}

// eachKey calls f with every key of a or of b, once, unless they are one
// map (nothing in it changed).
func eachKey[V any](a, b map[string]V, f func(string)) {
	if sameMap(a, b) {
		return
	}
	for k := range b {
		f(k)
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			f(k)
		}
	}
}

// sameMap reports whether a and b are one map (a state shares the maps a
// command did not write to with the state before it).
func sameMap[V any](a, b map[string]V) bool {
	return len(a) == len(b) && reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
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
