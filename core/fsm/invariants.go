package fsm

import (
	"maps"
	"slices"
	"sort"
)

// Port range for instances on a Back.
const (
	MinPort = 5000
	MaxPort = 6000
)

// checkInvariants rejects a state where a port is used twice on a host, a
// port is out of range, a host is over its declared capacity, or an
// installation has more instances on one host than its placement allows.
func (s *State) checkInvariants() error {
	// Walking the maps unsorted is enough to know that every invariant
	// holds, the common case; only a violation needs the sorted walk, so
	// that every node reports the same one first.
	if s.invariantsHold(false) == nil {
		return nil
	}
	return s.invariantsHold(true)
}

// CheckInvariants checks the invariants over the whole state (snapshot
// restore, tests); commands check only what they touched.
func (s *State) CheckInvariants() error { return s.checkInvariants() }

// checkTouched checks the invariants on the hosts that instances were just
// added to, the only ones a command that adds instances (and otherwise only
// removes them, changes their states, host statuses or installations' Front
// lists) can break: O(instances on those hosts), not O(instances). Without
// the usage index (a state changed in place) it checks everything.
func (s *State) checkTouched(added []*Instance) error {
	if !s.indexed() {
		return s.checkInvariants()
	}
	hosts := make([]string, 0, len(added))
	seen := make(map[string]bool, len(added))
	for _, in := range added {
		if in != nil && !seen[in.HostID] {
			seen[in.HostID] = true
			hosts = append(hosts, in.HostID)
		}
	}
	sort.Strings(hosts) // every node reports the same violation first
	v := s.Usage()
	for _, id := range hosts {
		if err := s.hostInvariants(id, v.On(id)); err != nil {
			return err
		}
	}
	return nil
}

// hostInvariants checks one host's instances (ordered by id), as
// invariantsHold does for all.
func (s *State) hostInvariants(hostID string, on []*Instance) error {
	t := newTally(len(on), 1)
	for _, in := range on {
		if err := t.add(s, in); err != nil {
			return err
		}
	}
	return t.fits(s.Hosts[hostID])
}

// invariantsHold checks the invariants, walking instances and hosts in id
// order when sorted.
func (s *State) invariantsHold(sorted bool) error {
	t := newTally(len(s.Instances), len(s.Hosts))
	instances, hosts := maps.Values(s.Instances), maps.Values(s.Hosts)
	if sorted {
		instances, hosts = slices.Values(s.SortedInstances()), slices.Values(s.SortedHosts())
	}
	for in := range instances {
		if err := t.add(s, in); err != nil {
			return err
		}
	}
	for h := range hosts {
		if err := t.fits(h); err != nil {
			return err
		}
	}
	return nil
}

// tally counts instances as the invariants see them: the ports taken and
// the instances of each release of an installation per host, and what each
// host's instances reserve. Sized up front and keyed by structs: the whole
// check runs over every instance, so it allocates per map, not per instance.
type tally struct {
	ports   map[hostPort]string
	perHost map[releaseOnHost]int
	used    map[string]Resources
}

type hostPort struct {
	host string
	port int
}

// A new release starts beside the one it replaces, so the per-host limit
// counts the instances of one release of an installation per host.
type releaseOnHost struct {
	installation string
	release      int
	host         string
}

func newTally(instances, hosts int) *tally {
	return &tally{
		ports:   make(map[hostPort]string, instances),
		perHost: make(map[releaseOnHost]int, instances),
		used:    make(map[string]Resources, hosts),
	}
}

// add counts in, refusing the first invariant it breaks.
func (t *tally) add(s *State, in *Instance) error {
	if in.Port < MinPort || in.Port > MaxPort {
		return errf(CodeInvalid, "instance %s: port %d outside %d-%d", in.ID, in.Port, MinPort, MaxPort)
	}
	if other, ok := t.ports[hostPort{in.HostID, in.Port}]; ok {
		return errf(CodeConflict, "port %d on host %s used by %s and %s", in.Port, in.HostID, other, in.ID)
	}
	t.ports[hostPort{in.HostID, in.Port}] = in.ID
	inst, ok := s.Installations[in.Installation]
	if !ok {
		return errf(CodeNotFound, "instance %s: no installation %q", in.ID, in.Installation)
	}
	// What InstanceRelease says, without building a Release for an
	// installation from before releases: this runs per instance.
	release, per := inst.LiveRelease(), inst.PerInstance
	if r := inst.releaseRun(in); r != nil {
		release, per = r.Version, r.PerInstance
	}
	key := releaseOnHost{in.Installation, release, in.HostID}
	t.perHost[key]++
	if limit := inst.PerHostLimit(); t.perHost[key] > limit {
		return errf(CodeConflict, "installation %q has %d instances on host %s (at most %d allowed) of release %d", in.Installation, t.perHost[key], in.HostID, limit, release)
	}
	t.used[in.HostID] = t.used[in.HostID].Add(per)
	return nil
}

// fits refuses a host (nil: none) whose counted instances exceed its
// declared capacity.
func (t *tally) fits(h *Host) error {
	if h != nil && !h.Capacity.Fits(t.used[h.ID]) {
		return errf(CodeConflict, "host %s would exceed its declared capacity", h.Name)
	}
	return nil
}

// checkFronts rejects an installation whose chosen Fronts are not as many as
// it wants, repeat a host, or name a host that is not a live Front.
func (s *State) checkFronts(in *Installation) error {
	if len(in.FrontHosts) != in.Fronts {
		return errf(CodeInvalid, "installation %q wants %d fronts but %d are chosen", in.Name, in.Fronts, len(in.FrontHosts))
	}
	seen := map[string]bool{}
	for _, id := range in.FrontHosts {
		h, ok := s.Hosts[id]
		if !ok || h.Role != RoleFront || h.Status == HostDecommissioned {
			return errf(CodeInvalid, "front %q is not a usable front host", id)
		}
		if seen[id] {
			return errf(CodeInvalid, "front %q chosen twice", id)
		}
		seen[id] = true
	}
	return nil
}
