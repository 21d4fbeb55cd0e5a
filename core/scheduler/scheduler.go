// Package scheduler decides where instances and Fronts go. It runs on the
// leader only and is pure: it reads a state snapshot and returns decisions
// (instances with hosts and ports, Front lists, plans) that the caller commits
// through raft. Backs must meet the installation's requirements and spread
// constraints and fit its reservation (a host's capacity is what it declared,
// capped by what its agent measured; an instance's disk is at least what its
// image unpacks to); among them the placement policy picks one (spread: most
// free capacity first; pack: the lowest Score, see policy.go), at most Placement.MaxPerHost (default 1) instances of an
// installation per Back, on the lowest free port in 5000–6000. Fronts go by
// fewest installations served.
package scheduler

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"potluck/core/fsm"
)

// IDFunc returns a fresh unique id (the leader uses random ids).
type IDFunc func() string

// NewInstanceID returns a fresh random instance id, e.g. "i-1f2e3d4c5b6a":
// the IDFunc of the leader wherever it places instances.
func NewInstanceID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "i-" + hex.EncodeToString(b[:])
}

// Planner tracks free capacity, ports and instance counts while several
// placements are made for one command, so decisions within a command never
// collide. What the state holds per host and per installation comes from its
// usage index (fsm.Usage) the first time the planner looks at that host or
// installation, so building a planner costs O(hosts) and a placement looks at
// the ready Backs only, whatever the number of instances.
type Planner struct {
	st          *fsm.State
	usage       fsm.Usage
	newID       IDFunc
	policy      string // overrides the cluster's default when set
	demand      Demand
	headroom    float64
	headroomSet bool

	backs     []*fsm.Host               // ready Backs, in no order (the fleet's size: not sorted per plan)
	spread    *spreadQueue              // ready Backs in spread's order; nil until spread places
	free      map[string]fsm.Resources  // host id -> free now; filled on first look
	ports     map[string]map[int]bool   // host id -> ports taken; filled on first look
	count     map[string]map[string]int // installation -> host id -> instances; filled on first look
	onHost    map[string]int            // host id -> instances this plan added (or removed)
	delta     map[string]fsm.Resources  // reservations this plan added (or released) per host
	frontLoad map[string]int            // Front host id -> installations this plan gave it
	fronts    []*fsm.Host               // ready Fronts, by id
}

// NewPlanner starts planning on st (which it never modifies).
func NewPlanner(st *fsm.State, newID IDFunc, opts ...Option) *Planner {
	p := &Planner{
		st: st, usage: st.Usage(), newID: newID, demand: ReservedDemand{},
		free:      map[string]fsm.Resources{},
		ports:     map[string]map[int]bool{},
		count:     map[string]map[string]int{},
		onHost:    map[string]int{},
		delta:     map[string]fsm.Resources{},
		frontLoad: map[string]int{},
	}
	for _, o := range opts {
		o(p)
	}
	for _, h := range st.Hosts {
		if h.Status != fsm.HostReady {
			continue
		}
		switch h.Role {
		case fsm.RoleBack:
			p.backs = append(p.backs, h)
		case fsm.RoleFront:
			p.fronts = append(p.fronts, h)
		}
	}
	sort.Slice(p.fronts, func(i, j int) bool { return p.fronts[i].ID < p.fronts[j].ID })
	return p
}

// freeOf is what host id has free now: its schedulable capacity less what
// the state's instances reserve there, with this plan's changes.
func (p *Planner) freeOf(id string) fsm.Resources {
	if f, ok := p.free[id]; ok {
		return f
	}
	f := p.stateFree(p.st.Hosts[id])
	p.free[id] = f
	return f
}

// stateFree is what h has free in the state, before this plan's changes.
func (p *Planner) stateFree(h *fsm.Host) fsm.Resources {
	if h == nil {
		return fsm.Resources{}
	}
	return h.Schedulable().Sub(p.usage.Host(h.ID).Reserved)
}

// portsOf is the set of ports taken on host.
func (p *Planner) portsOf(host string) map[int]bool {
	if m, ok := p.ports[host]; ok {
		return m
	}
	m := map[int]bool{}
	p.usage.EachOn(host, func(in *fsm.Instance) { m[in.Port] = true })
	p.ports[host] = m
	return m
}

// countOf is how many instances of installation each host runs.
func (p *Planner) countOf(installation string) map[string]int {
	if m, ok := p.count[installation]; ok {
		return m
	}
	m := map[string]int{}
	for _, in := range p.usage.Of(installation) {
		if _, ok := p.st.Hosts[in.HostID]; ok {
			m[in.HostID]++
		}
	}
	p.count[installation] = m
	return m
}

// instancesOn is how many instances host runs, with this plan's changes.
func (p *Planner) instancesOn(host string) int {
	return p.usage.Host(host).Instances + p.onHost[host]
}

func (p *Planner) mark(installation, host string, n int) {
	c := p.countOf(installation)
	c[host] += n
	if c[host] <= 0 {
		delete(c, host)
	}
	p.onHost[host] += n
}

func (p *Planner) takePort(host string, port int) {
	p.portsOf(host)[port] = true
}

// Beside lets the next placements of installation share Backs with its
// current instances: a new release starts next to the one it replaces (one
// instance per release per Back still holds among the new placements).
func (p *Planner) Beside(installation string) { p.count[installation] = map[string]int{} }

// release accounts for an instance that the plan removes. need is what it
// reserves: State.InstanceNeed for an instance of the state (what NewPlanner
// subtracted), the placement's need for one this plan placed.
func (p *Planner) release(in *fsm.Instance, need fsm.Resources) {
	p.free[in.HostID] = p.freeOf(in.HostID).Add(need)
	p.delta[in.HostID] = p.delta[in.HostID].Sub(need)
	p.moved(in.HostID)
	delete(p.portsOf(in.HostID), in.Port)
	p.mark(in.Installation, in.HostID, -1)
}

// hold undoes release: the instance stays where it is.
func (p *Planner) hold(in *fsm.Instance, need fsm.Resources) {
	p.free[in.HostID] = p.freeOf(in.HostID).Sub(need)
	p.delta[in.HostID] = p.delta[in.HostID].Add(need)
	p.moved(in.HostID)
	p.takePort(in.HostID, in.Port)
	p.mark(in.Installation, in.HostID, 1)
}

// spreadFull reports the first spread constraint of inst that h's feature
// value has reached, as "lender=a (1 of max 1)".
func (p *Planner) spreadFull(inst *fsm.Installation, h *fsm.Host) string {
	if inst.Placement == nil {
		return ""
	}
	for _, c := range inst.Placement.Spread {
		v := Feature(h, c.By)
		n := 0
		for other, k := range p.countOf(inst.Name) {
			if oh := p.st.Hosts[other]; oh != nil && Feature(oh, c.By) == v {
				n += k
			}
		}
		if n >= c.Max {
			return fmt.Sprintf("%s=%q (%d of max %d)", c.By, v, n, c.Max)
		}
	}
	return ""
}

// why a ready Back cannot take an instance; "" when it can.
func (p *Planner) unfit(inst *fsm.Installation, need fsm.Resources, h *fsm.Host) (reason, detail string) {
	if ok, missing := meets(h, inst.Placement); !ok {
		return "lacking " + missing, h.Name
	}
	if n := p.countOf(inst.Name)[h.ID]; n >= inst.PerHostLimit() {
		return "already running it", h.Name
	}
	if full := p.spreadFull(inst, h); full != "" {
		return "spread limit reached", h.Name + " " + full
	}
	if free := p.freeOf(h.ID); !free.Fits(need) {
		return "too small", fmt.Sprintf("%s (free %s)", h.Name, describe(free))
	}
	if p.freePort(h.ID) == 0 {
		return "no free port", h.Name
	}
	return "", ""
}

// PlaceBacks places count new instances of inst, one at a time, each on the
// best Back by the installation's policy. Either all are placed or none, with
// an error (code conflict) saying what is missing.
func (p *Planner) PlaceBacks(inst *fsm.Installation, count int) ([]*fsm.Instance, error) {
	return p.PlaceBacksNeeding(inst, p.st.Need(inst), count)
}

// PlaceBacksNeeding places count instances that each reserve need (a
// release's, which may differ from the live one's).
func (p *Planner) PlaceBacksNeeding(inst *fsm.Installation, need fsm.Resources, count int) ([]*fsm.Instance, error) {
	if count <= 0 {
		return nil, nil
	}
	if err := ValidatePlacement(inst.Placement); err != nil {
		return nil, err
	}
	policy := p.policyOf(inst)
	if err := ValidatePolicy(policy); err != nil {
		return nil, err
	}
	var out []*fsm.Instance
	for len(out) < count {
		h := p.best(inst, need, policy)
		if h == nil {
			err := p.shortage(inst, need, count, len(out)) // before the rollback: it explains this step
			for _, in := range out {                       // all or nothing
				p.release(in, need)
			}
			return nil, err
		}
		port := p.freePort(h.ID)
		in := &fsm.Instance{ID: p.newID(), Installation: inst.Name, HostID: h.ID, Port: port, State: fsm.InstancePending}
		p.hold(in, need)
		out = append(out, in)
	}
	return out, nil
}

// best returns the ready Back that policy ranks first for one more instance
// of inst, or nil when none can take it. Ties go to the lowest host id.
func (p *Planner) best(inst *fsm.Installation, need fsm.Resources, policy string) *fsm.Host {
	if policy != PolicyPack {
		return p.spreadBest(inst, need) // the first Back by free capacity that fits
	}
	var pick *fsm.Host
	bestScore := 0.0
	for _, h := range p.backs {
		if r, _ := p.unfit(inst, need, h); r != "" {
			continue
		}
		s := Score(p.candidate(h), need, p.headroom)
		if pick == nil || s < bestScore || s == bestScore && h.ID < pick.ID {
			pick, bestScore = h, s
		}
	}
	return pick
}

func (p *Planner) candidate(h *fsm.Host) Candidate {
	free := p.freeOf(h.ID)
	reservedBefore := h.Schedulable().Sub(free).Sub(p.delta[h.ID])
	return Candidate{
		Host: h, Free: free, Instances: p.instancesOn(h.ID),
		Load: p.demand.Load(h, reservedBefore).Add(p.delta[h.ID]),
	}
}

// shortage explains why only placed of count instances fit.
func (p *Planner) shortage(inst *fsm.Installation, need fsm.Resources, count, placed int) error {
	reasons := map[string][]string{}
	var order []string
	backs := slices.SortedFunc(slices.Values(p.backs), func(a, b *fsm.Host) int { return strings.Compare(a.ID, b.ID) })
	for _, h := range backs {
		if r, d := p.unfit(inst, need, h); r != "" {
			if reasons[r] == nil {
				order = append(order, r)
			}
			reasons[r] = append(reasons[r], d)
		}
	}
	msg := fmt.Sprintf("not enough capacity: %d back(s) with %s free needed, %d fit (%d more needed; ready backs considered: %d)",
		count, describe(need), placed, count-placed, len(p.backs))
	for _, r := range order {
		list := reasons[r]
		if len(list) > 8 {
			list = append(list[:8:8], fmt.Sprintf("and %d more", len(list)-8))
		}
		msg += "; " + r + ": " + strings.Join(list, ", ")
	}
	return &fsm.Error{Code: fsm.CodeConflict, Message: msg}
}

// PickFronts returns count ready Fronts not in keep, fewest installations first.
func (p *Planner) PickFronts(count int, keep []string) ([]string, error) {
	if count <= 0 {
		return nil, nil
	}
	skip := map[string]bool{}
	for _, k := range keep {
		skip[k] = true
	}
	var cand []*fsm.Host
	for _, h := range p.fronts {
		if !skip[h.ID] {
			cand = append(cand, h)
		}
	}
	if len(cand) < count {
		return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf(
			"not enough fronts: %d more ready front(s) needed, %d available", count, len(cand))}
	}
	load := func(id string) int { return p.usage.Fronting(id) + p.frontLoad[id] }
	sort.SliceStable(cand, func(i, j int) bool { return load(cand[i].ID) < load(cand[j].ID) })
	out := make([]string, 0, count)
	for _, h := range cand[:count] {
		p.frontLoad[h.ID]++
		out = append(out, h.ID)
	}
	return out, nil
}

func (p *Planner) freePort(host string) int {
	taken := p.portsOf(host)
	for port := fsm.MinPort; port <= fsm.MaxPort; port++ {
		if !taken[port] {
			return port
		}
	}
	return 0
}

func moreFree(a, b fsm.Resources) bool {
	if a.MilliCPU != b.MilliCPU {
		return a.MilliCPU > b.MilliCPU
	}
	if a.MemoryMB != b.MemoryMB {
		return a.MemoryMB > b.MemoryMB
	}
	return a.DiskMB > b.DiskMB
}

// describe says r in the units the CLI and the UI show and take: cpus as a
// decimal (0.5 cpu, as --cpus), memory and disk in MiB.
func describe(r fsm.Resources) string {
	return fmt.Sprintf("%s cpu, %d MiB memory, %d MiB disk", strconv.FormatFloat(float64(r.MilliCPU)/1000, 'f', -1, 64), r.MemoryMB, r.DiskMB)
}

// PlanInstallation chooses Fronts and Backs for a new installation.
func PlanInstallation(st *fsm.State, inst *fsm.Installation, newID IDFunc, opts ...Option) (fronts []string, instances []*fsm.Instance, err error) {
	if err := ValidatePlacement(inst.Placement); err != nil {
		return nil, nil, err
	}
	p := NewPlanner(st, newID, opts...)
	var missing []string
	instances, err = p.PlaceBacks(inst, inst.Backs)
	if err != nil {
		missing = append(missing, err.Error())
	}
	fronts, err = p.PickFronts(inst.Fronts, nil)
	if err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		return nil, nil, &fsm.Error{Code: fsm.CodeConflict, Message: strings.Join(missing, "; ")}
	}
	return fronts, instances, nil
}

// PlanScale changes the number of Fronts and Backs of an installation. Scaling
// down removes lost, failed and pending instances first, then (under pack)
// those on the Backs with fewest instances, then by id.
func PlanScale(st *fsm.State, name string, fronts, backs int, newID IDFunc, opts ...Option) (*fsm.Plan, error) {
	inst, ok := st.Installations[name]
	if !ok {
		return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no installation %q", name)}
	}
	p := NewPlanner(st, newID, opts...)
	plan := &fsm.Plan{}
	cur := st.InstancesOf(name)
	if backs < len(cur) {
		pack := p.policyOf(inst) == PolicyPack
		sort.SliceStable(cur, func(i, j int) bool {
			if ri, rj := RemovalRank(cur[i]), RemovalRank(cur[j]); ri != rj {
				return ri > rj
			}
			// Packing empties the least used Backs first, so they can be freed.
			return pack && p.instancesOn(cur[i].HostID) < p.instancesOn(cur[j].HostID)
		})
		for _, in := range cur[:len(cur)-backs] {
			plan.Remove = append(plan.Remove, in.ID)
			p.release(in, st.InstanceNeed(in))
		}
	}
	add, err := p.PlaceBacks(inst, backs-len(cur))
	if err != nil {
		return nil, err
	}
	plan.Add = add
	frontHosts, err := adjustFronts(st, p, inst.FrontHosts, fronts, nil)
	if err != nil {
		return nil, err
	}
	plan.Installations = []fsm.InstallationUpdate{{Name: name, Fronts: fronts, Backs: backs, FrontHosts: frontHosts}}
	return plan, nil
}

// RemovalRank orders instances for scale-in: the higher goes first (lost,
// then failed, then pending, then running ones), since what serves nothing
// costs nothing to remove.
func RemovalRank(in *fsm.Instance) int {
	switch in.State {
	case fsm.InstanceLost:
		return 3
	case fsm.InstanceFailed:
		return 2
	case fsm.InstancePending:
		return 1
	}
	return 0
}

// adjustFronts keeps the usable current Fronts (not in drop, not down) and
// picks more until want.
func adjustFronts(st *fsm.State, p *Planner, cur []string, want int, drop map[string]bool) ([]string, error) {
	var keep []string
	for _, id := range cur {
		h := st.Hosts[id]
		if h != nil && h.Status == fsm.HostReady && !drop[id] && len(keep) < want {
			keep = append(keep, id)
		}
	}
	more, err := p.PickFronts(want-len(keep), cur)
	if err != nil {
		return nil, err
	}
	return append(keep, more...), nil
}

// PlanDecommission starts draining hosts: every instance on them gets a
// replacement elsewhere while it keeps running, and every installation they
// front gets another Front. Hosts with no instance are decommissioned at once;
// the others are Draining until PlanDrained finishes them. If anything
// cannot be placed the whole plan fails.
func PlanDecommission(st *fsm.State, hostIDs []string, newID IDFunc, opts ...Option) (*fsm.Plan, error) {
	gone := map[string]bool{}
	plan := &fsm.Plan{}
	for _, id := range hostIDs {
		gone[id] = true
		status := fsm.HostDecommissioned
		if len(st.InstancesOn(id)) > 0 {
			status = fsm.HostDraining
		}
		plan.Hosts = append(plan.Hosts, fsm.HostStatusChange{HostID: id, Status: status})
	}
	p := NewPlanner(markStatus(st, hostIDs, fsm.HostDraining), newID, opts...)
	var moving []*fsm.Instance
	for _, in := range st.SortedInstances() {
		// A draining instance (replaced by a newer release, or of a
		// deleted installation) is on its way out: it gets no replacement.
		if gone[in.HostID] && in.State != fsm.InstanceDraining {
			// It keeps running until its replacement does, but on a draining
			// host that takes no new work; released here so that spread
			// constraints count the replacement instead of it.
			p.release(in, st.InstanceNeed(in))
			moving = append(moving, in)
		}
	}
	for _, in := range moving {
		// The replacement runs the same release (a rollout's new instances
		// included), with that release's resources, as in PlanRepair.
		inst := st.Installations[in.Installation]
		add, err := p.PlaceBacksNeeding(inst, st.InstanceNeed(in), 1)
		if err != nil {
			return nil, fmt.Errorf("cannot move instance %s of %q: %w", in.ID, in.Installation, err)
		}
		for _, a := range add {
			a.Release = in.Release
		}
		plan.Add = append(plan.Add, add...)
	}
	for _, inst := range st.SortedInstallations() {
		if !anyIn(inst.FrontHosts, gone) {
			continue
		}
		fronts, err := adjustFronts(st, p, inst.FrontHosts, inst.Fronts, gone)
		if err != nil {
			return nil, fmt.Errorf("cannot replace front of %q: %w", inst.Name, err)
		}
		plan.Installations = append(plan.Installations, fsm.InstallationUpdate{Name: inst.Name, Fronts: inst.Fronts, Backs: inst.Backs, FrontHosts: fronts})
	}
	return plan, nil
}

// PlanDrained finishes draining hosts whose installations are at full
// strength without them (at least Backs instances running on other hosts),
// or that have drained for longer than timeout: their instances are removed
// and they are decommissioned. It returns an empty plan when nothing is done.
func PlanDrained(st *fsm.State, now time.Time, timeout time.Duration) *fsm.Plan {
	plan := &fsm.Plan{}
	for _, h := range st.SortedHosts() {
		if h.Status != fsm.HostDraining {
			continue
		}
		on := st.InstancesOn(h.ID)
		if now.Sub(h.UpdatedAt) < timeout && !allReplaced(st, on) {
			continue
		}
		plan.Hosts = append(plan.Hosts, fsm.HostStatusChange{HostID: h.ID, Status: fsm.HostDecommissioned})
		for _, in := range on {
			plan.Remove = append(plan.Remove, in.ID)
		}
	}
	return plan
}

// allReplaced reports whether every installation with an instance in on is
// at full strength on hosts that are not draining.
func allReplaced(st *fsm.State, on []*fsm.Instance) bool {
	for _, in := range on {
		inst := st.Installations[in.Installation]
		if inst != nil && runningElsewhere(st, in.Installation) < inst.Backs {
			return false
		}
	}
	return true
}

// runningElsewhere counts an installation's running instances on hosts that
// are not draining.
func runningElsewhere(st *fsm.State, installation string) int {
	n := 0
	for _, in := range st.InstancesOf(installation) {
		if h := st.Hosts[in.HostID]; h != nil && h.Status != fsm.HostDraining && in.State == fsm.InstanceRunning {
			n++
		}
	}
	return n
}

// PlanRepair moves instances off hosts that are not ready (down or
// decommissioned) where capacity exists, marks the rest lost, and replaces
// Fronts that are not ready where a spare Front exists. down lists hosts that
// this same plan marks down. It returns an empty plan when nothing is to do.
func PlanRepair(st *fsm.State, down []string, newID IDFunc, opts ...Option) *fsm.Plan {
	plan := &fsm.Plan{}
	for _, id := range down {
		plan.Hosts = append(plan.Hosts, fsm.HostStatusChange{HostID: id, Status: fsm.HostDown})
	}
	view := markStatus(st, down, fsm.HostDown)
	p := NewPlanner(view, newID, opts...)
	for _, in := range repairCandidates(view) {
		h := view.Hosts[in.HostID]
		if h != nil && h.Status == fsm.HostDraining {
			continue // its replacement is placed already; PlanDrained removes it
		}
		if h != nil && h.Status == fsm.HostReady {
			if in.State == fsm.InstanceLost { // its host came back
				plan.Update = append(plan.Update, fsm.InstanceUpdate{ID: in.ID, State: fsm.InstancePending})
			}
			continue
		}
		if in.State == fsm.InstanceDraining {
			continue // replaced by a newer release already; the rollout removes it
		}
		// The replacement runs the same release (a rollout's new instances
		// included), with that release's resources.
		inst := view.Installations[in.Installation]
		need := view.InstanceNeed(in)
		p.release(in, need)
		add, err := p.PlaceBacksNeeding(inst, need, 1)
		if err != nil {
			p.hold(in, need) // stays where it is, lost
			if in.State != fsm.InstanceLost {
				plan.Update = append(plan.Update, fsm.InstanceUpdate{ID: in.ID, State: fsm.InstanceLost, Message: "host is not ready; waiting for capacity"})
			}
			continue
		}
		for _, a := range add {
			a.Release = in.Release
		}
		plan.Remove = append(plan.Remove, in.ID)
		plan.Add = append(plan.Add, add...)
	}
	for _, inst := range view.SortedInstallations() {
		bad := map[string]bool{}
		for _, f := range inst.FrontHosts {
			if h := view.Hosts[f]; h == nil || h.Status != fsm.HostReady {
				bad[f] = true
			}
		}
		if len(bad) == 0 {
			continue
		}
		fronts, err := adjustFronts(view, p, inst.FrontHosts, inst.Fronts, bad)
		if err != nil {
			continue // no spare Front now; try again on a later round
		}
		plan.Installations = append(plan.Installations, fsm.InstallationUpdate{Name: inst.Name, Fronts: inst.Fronts, Backs: inst.Backs, FrontHosts: fronts})
	}
	return plan
}

// repairCandidates are the instances PlanRepair may act on, by id: those on
// a host that is neither ready nor draining (or unknown), and lost ones on
// a ready host. It runs every reconcile tick, so it walks the instances
// once without sorting them all: almost every instance is on a ready host
// and running.
func repairCandidates(st *fsm.State) []*fsm.Instance {
	var out []*fsm.Instance
	for _, in := range st.Instances {
		h := st.Hosts[in.HostID]
		switch {
		case h == nil:
		case h.Status == fsm.HostReady && in.State != fsm.InstanceLost, h.Status == fsm.HostDraining:
			continue
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func anyIn(ids []string, set map[string]bool) bool {
	for _, id := range ids {
		if set[id] {
			return true
		}
	}
	return false
}

// markStatus returns a copy of st with some hosts in another status.
func markStatus(st *fsm.State, ids []string, status fsm.HostStatus) *fsm.State {
	if len(ids) == 0 {
		return st
	}
	view := st.Clone()
	for _, id := range ids {
		if h, ok := view.Hosts[id]; ok {
			h.Status = status
		}
	}
	return view
}
