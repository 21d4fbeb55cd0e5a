package fsm

import (
	"maps"
	"reflect"
	"sort"
	"unsafe"
)

// usage indexes a state's instances by host and by installation, with what
// they reserve per host: derived data, kept beside a state by apply (never
// serialised, rebuilt on restore), so that placement and the invariant
// checks of a command look at the hosts it touches instead of walking every
// instance. Published with its state and never changed after; a fork copies
// the parts it writes (see fork.go).
type usage struct {
	hosts         map[string]*hostUsage          // host id -> its instances
	installations map[string]map[string]struct{} // installation -> its instance ids
	fronts        map[string]int                 // Front host id -> installations it fronts
	// of is the instance map indexed: a copy of a state whose instances
	// were replaced (an app-owner's scoped view, say) carries the index
	// along but must not use it.
	of unsafe.Pointer
}

// indexed reports whether s has a usage index of its own instances.
func (s *State) indexed() bool {
	return s.usage != nil && s.usage.of == mapPointer(s.Instances)
}

func mapPointer(m map[string]*Instance) unsafe.Pointer {
	return reflect.ValueOf(m).UnsafePointer()
}

type hostUsage struct {
	// need is what each instance on the host reserves (InstanceNeed when
	// it was placed; rebuilt when a command can change needs).
	need     map[string]Resources
	reserved Resources // the sum of need
}

// buildUsage indexes every instance of s: O(instances), on restore, on the
// first fork of a state that has none, and after a command that can change
// what placed instances reserve.
func buildUsage(s *State) *usage {
	u := &usage{hosts: map[string]*hostUsage{}, installations: map[string]map[string]struct{}{}, fronts: map[string]int{}, of: mapPointer(s.Instances)}
	for _, inst := range s.Installations {
		for _, f := range inst.FrontHosts {
			u.fronts[f]++
		}
	}
	for id, in := range s.Instances {
		hu := u.hosts[in.HostID]
		if hu == nil {
			hu = &hostUsage{need: map[string]Resources{}}
			u.hosts[in.HostID] = hu
		}
		need := s.InstanceNeed(in)
		hu.need[id] = need
		hu.reserved = hu.reserved.Add(need)
		set := u.installations[in.Installation]
		if set == nil {
			set = map[string]struct{}{}
			u.installations[in.Installation] = set
		}
		set[id] = struct{}{}
	}
	return u
}

// rebuildUsage re-indexes a fork after a command that can change what
// placed instances reserve (a new app version may forget old ones, a
// promotion changes the live release's resources).
func (s *State) rebuildUsage() {
	if s.w == nil {
		s.usage = nil
		return
	}
	s.usage = buildUsage(s)
	s.w.usageHosts, s.w.usageInstallations, s.w.usageFronts = true, true, true
	for id := range s.usage.hosts {
		s.w.hostSets[id] = true
	}
	for name := range s.usage.installations {
		s.w.installationSets[name] = true
	}
}

func (s *State) hostUsageForWrite(id string) *hostUsage {
	if !s.w.usageHosts {
		s.usage.hosts, s.w.usageHosts = maps.Clone(s.usage.hosts), true
	}
	hu := s.usage.hosts[id]
	if !s.w.hostSets[id] {
		cp := &hostUsage{need: map[string]Resources{}}
		if hu != nil {
			cp.need, cp.reserved = maps.Clone(hu.need), hu.reserved
		}
		s.usage.hosts[id], s.w.hostSets[id] = cp, true
		hu = cp
	}
	return hu
}

func (s *State) installationSetForWrite(name string) map[string]struct{} {
	if !s.w.usageInstallations {
		s.usage.installations, s.w.usageInstallations = maps.Clone(s.usage.installations), true
	}
	set := s.usage.installations[name]
	if !s.w.installationSets[name] {
		set = maps.Clone(set)
		if set == nil {
			set = map[string]struct{}{}
		}
		s.usage.installations[name], s.w.installationSets[name] = set, true
	}
	return set
}

func (s *State) usageAdd(in *Instance) {
	if s.w == nil { // a state changed in place (tests): no index to keep
		s.usage = nil
		return
	}
	hu := s.hostUsageForWrite(in.HostID)
	need := s.InstanceNeed(in)
	hu.need[in.ID] = need
	hu.reserved = hu.reserved.Add(need)
	s.installationSetForWrite(in.Installation)[in.ID] = struct{}{}
}

func (s *State) usageRemove(in *Instance) {
	if s.w == nil {
		s.usage = nil
		return
	}
	hu := s.hostUsageForWrite(in.HostID)
	hu.reserved = hu.reserved.Sub(hu.need[in.ID])
	delete(hu.need, in.ID)
	if len(hu.need) == 0 {
		delete(s.usage.hosts, in.HostID)
		delete(s.w.hostSets, in.HostID)
	}
	set := s.installationSetForWrite(in.Installation)
	delete(set, in.ID)
	if len(set) == 0 {
		delete(s.usage.installations, in.Installation)
		delete(s.w.installationSets, in.Installation)
	}
}

// frontsChange counts an installation's Fronts in (delta 1) or out (-1) of
// the index, when it is created, deleted or gets other Fronts.
func (s *State) frontsChange(frontHosts []string, delta int) {
	if s.w == nil {
		s.usage = nil
		return
	}
	if !s.w.usageFronts {
		s.usage.fronts, s.w.usageFronts = maps.Clone(s.usage.fronts), true
	}
	for _, f := range frontHosts {
		if s.usage.fronts[f] += delta; s.usage.fronts[f] <= 0 {
			delete(s.usage.fronts, f)
		}
	}
}

// HostUsage is what the instances on one host reserve, and how many.
type HostUsage struct {
	Reserved  Resources
	Instances int
}

// Usage answers per-host and per-installation questions about instances
// without walking them all: from the index apply keeps when the state has
// one (every state an FSM publishes), else from one walk when made.
type Usage struct {
	st *State
	u  *usage
}

// Usage returns the state's usage view: O(1) for a state an FSM published,
// O(instances) once for one built otherwise.
func (s *State) Usage() Usage {
	if s.indexed() {
		return Usage{st: s, u: s.usage}
	}
	return Usage{st: s, u: buildUsage(s)}
}

// Host is what the instances on host id reserve, and how many there are.
func (v Usage) Host(id string) HostUsage {
	hu := v.u.hosts[id]
	if hu == nil {
		return HostUsage{}
	}
	return HostUsage{Reserved: hu.reserved, Instances: len(hu.need)}
}

// Fronting is how many installations host id fronts.
func (v Usage) Fronting(id string) int { return v.u.fronts[id] }

// On returns the instances on a host, ordered by id.
func (v Usage) On(hostID string) []*Instance {
	hu := v.u.hosts[hostID]
	if hu == nil {
		return nil
	}
	return v.lookup(maps.Keys(hu.need), len(hu.need))
}

// EachOn calls f with every instance on a host, in no order: for callers
// that only gather (ports, counts), without On's copy and sort.
func (v Usage) EachOn(hostID string, f func(*Instance)) {
	hu := v.u.hosts[hostID]
	if hu == nil {
		return
	}
	for id := range hu.need {
		if in := v.st.Instances[id]; in != nil {
			f(in)
		}
	}
}

// Of returns the instances of an installation, ordered by id.
func (v Usage) Of(installation string) []*Instance {
	set := v.u.installations[installation]
	return v.lookup(maps.Keys(set), len(set))
}

func (v Usage) lookup(ids func(func(string) bool), n int) []*Instance {
	if n == 0 {
		return nil
	}
	out := make([]*Instance, 0, n)
	for id := range ids {
		if in := v.st.Instances[id]; in != nil {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
