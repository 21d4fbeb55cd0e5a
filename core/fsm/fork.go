package fsm

import (
	"maps"

	"potluck/meshnet"
)

// A fork is the working copy a command (or a batch of commands) is applied
// to. Published states are immutable and read without locks, so a change
// cannot be made in place; copying the whole state per command (what Clone
// does) made every command cost O(hosts + instances) on every node. A fork
// instead shares the big maps (hosts, instances, installations, request
// records, the address allocator, the usage index) with the state it came
// from and copies each one the first time the fork writes to it; entities in
// them are shared too and copied by the edit helpers before a change. The
// small maps (apps, tokens, core nodes) are still copied whole: the apply
// code changes their entities in place, and they hold tens of entries.
//
// A fork that took several commands owns its copies, so the later ones
// write in place: a batch costs one copy of each map it touches.
type writeSet struct {
	hosts, instances, requests, addresses bool
	installations                         bool
	usageHosts, usageInstallations        bool
	usageFronts                           bool
	// Inner sets of the usage index this fork copied already.
	hostSets, installationSets map[string]bool
	// What the batch wrote, for the change node sealed gives the result.
	from                           uint64
	prevChanges                    *changeNode
	touchedHosts, touchedInstances map[string]struct{}
}

// fork returns a working copy of s for apply. s itself is never changed.
func (s *State) fork() *State {
	c := *s
	c.w = &writeSet{hostSets: map[string]bool{}, installationSets: map[string]bool{},
		from: s.Index, prevChanges: s.changes, touchedHosts: map[string]struct{}{}, touchedInstances: map[string]struct{}{}}
	if !s.indexed() {
		c.rebuildUsage() // the fork's own index, written by it from the start
	} else {
		u := *c.usage
		c.usage = &u
	}
	// Appended to and trimmed on every command: a shared backing array
	// would let two forks of one state write the same slot.
	c.RequestOrder = append(make([]string, 0, len(s.RequestOrder)+1), s.RequestOrder...)
	s.copySmallMaps(&c)
	return &c
}

// copySmallMaps gives c copies of s's apps, tokens and core nodes, each
// entity copied (apply changes them in place).
func (s *State) copySmallMaps(c *State) {
	c.CoreNodes = copyEntities(s.CoreNodes)
	c.Apps = copyEntities(s.Apps)
	c.Tokens = copyEntities(s.Tokens)
}

// copyEntities copies m and every entity in it (shallowly).
func copyEntities[V any](m map[string]*V) map[string]*V {
	out := make(map[string]*V, len(m))
	for k, v := range m {
		cp := *v
		out[k] = &cp
	}
	return out
}

// sealed ends a fork's writes: the result is published and must not change.
func (s *State) sealed() *State {
	s.recordChanges()
	s.w = nil
	return s
}

// writable reports whether s is a fork (apply may change it).
func (s *State) writable() bool { return s.w != nil }

func (s *State) hostsForWrite() map[string]*Host {
	if s.w != nil && !s.w.hosts {
		s.Hosts, s.w.hosts = maps.Clone(s.Hosts), true
	}
	return s.Hosts
}

func (s *State) instancesForWrite() map[string]*Instance {
	if s.w != nil && !s.w.instances {
		s.Instances, s.w.instances = maps.Clone(s.Instances), true
		s.usage.of = mapPointer(s.Instances) // the fork's own usage, made by fork
	}
	return s.Instances
}

func (s *State) installationsForWrite() map[string]*Installation {
	if s.w != nil && !s.w.installations {
		s.Installations, s.w.installations = maps.Clone(s.Installations), true
	}
	return s.Installations
}

// putInstallation stores inst (a copy the caller made) under its name.
func (s *State) putInstallation(inst *Installation) { s.installationsForWrite()[inst.Name] = inst }

// editInstallation returns a copy of installation name stored in its place,
// ready to change (its slices and pointers still shared: replace them, do
// not write into them); nil when there is none.
func (s *State) editInstallation(name string) *Installation {
	return editIn(s.Installations, name, s.installationsForWrite)
}

// editIn copies the entity m holds under key into the map forWrite returns
// (m itself, or the fork's copy of it) and returns the copy; nil when there
// is none.
func editIn[V any](m map[string]*V, key string, forWrite func() map[string]*V) *V {
	v, ok := m[key]
	if !ok {
		return nil
	}
	cp := *v
	forWrite()[key] = &cp
	return &cp
}

func (s *State) requestsForWrite() map[string]RequestRecord {
	if s.w != nil && !s.w.requests {
		s.Requests, s.w.requests = maps.Clone(s.Requests), true
	}
	return s.Requests
}

// addresses is the allocator, ready to change (nil when none exists yet).
func (s *State) addressesForWrite() *meshnet.Allocator {
	if s.w != nil && !s.w.addresses && s.Addresses != nil {
		s.Addresses, s.w.addresses = s.Addresses.Clone(), true
	}
	return s.Addresses
}

// putHost stores h (a copy the caller made) under its id.
func (s *State) putHost(h *Host) {
	s.touchHost(h.ID)
	s.hostsForWrite()[h.ID] = h
}

// editHost returns a copy of host id stored in its place, ready to change;
// nil when there is none.
func (s *State) editHost(id string) *Host {
	s.touchHost(id)
	return editIn(s.Hosts, id, s.hostsForWrite)
}

// putInstance stores in (a copy the caller made), new or replacing one with
// the same id, host and installation.
func (s *State) putInstance(in *Instance) {
	_, existed := s.Instances[in.ID]
	s.touchInstance(in.ID)
	s.instancesForWrite()[in.ID] = in
	if !existed {
		s.usageAdd(in)
	}
}

// editInstance returns a copy of instance id stored in its place, ready to
// change its state (never its host, port or installation); nil when there
// is none.
func (s *State) editInstance(id string) *Instance {
	s.touchInstance(id)
	return editIn(s.Instances, id, s.instancesForWrite)
}

// dropInstance deletes instance id.
func (s *State) dropInstance(id string) {
	in, ok := s.Instances[id]
	if !ok {
		return
	}
	s.usageRemove(in)
	s.touchInstance(id)
	delete(s.instancesForWrite(), id)
}

// recordRequest remembers a request's outcome, forgetting the oldest beyond
// MaxRequestRecords.
func (s *State) recordRequest(rec RequestRecord) {
	reqs := s.requestsForWrite()
	reqs[rec.ID] = rec
	s.RequestOrder = append(s.RequestOrder, rec.ID)
	if n := len(s.RequestOrder) - MaxRequestRecords; n > 0 {
		for _, id := range s.RequestOrder[:n] {
			delete(reqs, id)
		}
		s.RequestOrder = s.RequestOrder[n:]
	}
}

// Draft is the leader's view of the state with the commands it proposed
// that raft has not committed yet: what decisions are planned on, so that
// the next decision need not wait for the previous one's commit and still
// sees its placements (ports, capacity). It is private to its holder and
// changed in place; the FSM's own checks still guard every commit, so a
// draft that differs from what gets committed can only make a command fail,
// never overcommit a host.
type Draft struct {
	st     *State
	broken bool
}

// NewDraft starts a draft from the FSM's current state.
func (f *FSM) NewDraft() *Draft { return &Draft{st: f.State().fork()} }

// State is the draft's state, for a builder to read during the call only
// (the next Apply changes it).
func (d *Draft) State() *State { return d.st }

// Broken reports whether a command failed on the draft halfway: its partial
// changes make the draft unusable.
func (d *Draft) Broken() bool { return d.broken }

// Has reports whether the draft holds the outcome of request id.
func (d *Draft) Has(requestID string) bool {
	_, ok := d.st.Requests[requestID]
	return requestID != "" && ok
}

// Apply applies c as the FSM will when raft commits it; false when c failed
// (the draft is then Broken).
func (d *Draft) Apply(c *Command) bool {
	if d.broken {
		return false
	}
	if _, ok := applyCommand(d.st, c, d.st.Index+1); !ok {
		d.broken = true
	}
	return !d.broken
}
