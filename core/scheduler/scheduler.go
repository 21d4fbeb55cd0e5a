// Package scheduler decides where instances and Fronts go. It runs on the
// leader only and is pure: it reads a state snapshot and returns decisions
// (instances with hosts and ports, Front lists, plans) that the caller commits
// through raft. Backs are chosen by declared free capacity (most free first),
// one instance of an installation per Back, on the lowest free port in
// 5000–6000; Fronts by fewest installations served.
package scheduler

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
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

// Planner tracks free capacity and ports while several placements are made
// for one command, so decisions within a command never collide.
type Planner struct {
	st        *fsm.State
	newID     IDFunc
	free      map[string]fsm.Resources
	ports     map[string]map[int]bool
	on        map[string]map[string]bool // installation -> host ids in use
	frontLoad map[string]int
}

// NewPlanner starts planning on st (which it never modifies).
func NewPlanner(st *fsm.State, newID IDFunc) *Planner {
	p := &Planner{
		st: st, newID: newID,
		free:      map[string]fsm.Resources{},
		ports:     map[string]map[int]bool{},
		on:        map[string]map[string]bool{},
		frontLoad: map[string]int{},
	}
	for _, h := range st.SortedHosts() {
		p.free[h.ID] = h.Capacity.Sub(st.Used(h.ID))
		p.ports[h.ID] = st.UsedPorts(h.ID)
	}
	for _, in := range st.SortedInstances() {
		p.mark(in.Installation, in.HostID)
	}
	for _, inst := range st.SortedInstallations() {
		for _, f := range inst.FrontHosts {
			p.frontLoad[f]++
		}
	}
	return p
}

func (p *Planner) mark(installation, host string) {
	if p.on[installation] == nil {
		p.on[installation] = map[string]bool{}
	}
	p.on[installation][host] = true
}

// Beside lets the next placements of installation share Backs with its
// current instances: a new release starts next to the one it replaces (one
// instance per release per Back still holds among the new placements).
func (p *Planner) Beside(installation string) { delete(p.on, installation) }

// Release accounts for an instance that the plan removes.
func (p *Planner) Release(in *fsm.Instance, need fsm.Resources) {
	p.free[in.HostID] = p.free[in.HostID].Add(need)
	delete(p.ports[in.HostID], in.Port)
	delete(p.on[in.Installation], in.HostID)
}

// PlaceBacks places count new instances of an installation. Either all are
// placed or none, with an error (code conflict) saying what is missing.
func (p *Planner) PlaceBacks(installation string, need fsm.Resources, count int) ([]*fsm.Instance, error) {
	if count <= 0 {
		return nil, nil
	}
	var fit []*fsm.Host
	var short []string
	ready := 0
	for _, h := range p.st.SortedHosts() {
		if h.Role != fsm.RoleBack || h.Status != fsm.HostReady || p.on[installation][h.ID] {
			continue
		}
		ready++
		free := p.free[h.ID]
		if !free.Fits(need) {
			short = append(short, fmt.Sprintf("%s (free %s)", h.Name, describe(free)))
			continue
		}
		if p.freePort(h.ID) == 0 {
			short = append(short, fmt.Sprintf("%s (no free port)", h.Name))
			continue
		}
		fit = append(fit, h)
	}
	if len(fit) < count {
		msg := fmt.Sprintf("not enough capacity: %d back(s) with %s free needed, %d fit (%d more needed; ready backs considered: %d)",
			count, describe(need), len(fit), count-len(fit), ready)
		if len(short) > 0 {
			msg += "; too small: " + strings.Join(short, ", ")
		}
		return nil, &fsm.Error{Code: fsm.CodeConflict, Message: msg}
	}
	sort.SliceStable(fit, func(i, j int) bool { return moreFree(p.free[fit[i].ID], p.free[fit[j].ID]) })
	out := make([]*fsm.Instance, 0, count)
	for _, h := range fit[:count] {
		port := p.freePort(h.ID)
		p.ports[h.ID][port] = true
		p.free[h.ID] = p.free[h.ID].Sub(need)
		p.mark(installation, h.ID)
		out = append(out, &fsm.Instance{
			ID: p.newID(), Installation: installation, HostID: h.ID, Port: port, State: fsm.InstancePending,
		})
	}
	return out, nil
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
	for _, h := range p.st.SortedHosts() {
		if h.Role == fsm.RoleFront && h.Status == fsm.HostReady && !skip[h.ID] {
			cand = append(cand, h)
		}
	}
	if len(cand) < count {
		return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf(
			"not enough fronts: %d more ready front(s) needed, %d available", count, len(cand))}
	}
	sort.SliceStable(cand, func(i, j int) bool { return p.frontLoad[cand[i].ID] < p.frontLoad[cand[j].ID] })
	out := make([]string, 0, count)
	for _, h := range cand[:count] {
		p.frontLoad[h.ID]++
		out = append(out, h.ID)
	}
	return out, nil
}

func (p *Planner) freePort(host string) int {
	for port := fsm.MinPort; port <= fsm.MaxPort; port++ {
		if !p.ports[host][port] {
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

func describe(r fsm.Resources) string {
	return fmt.Sprintf("%dm cpu, %d MB memory, %d MB disk", r.MilliCPU, r.MemoryMB, r.DiskMB)
}

// PlanInstallation chooses Fronts and Backs for a new installation.
func PlanInstallation(st *fsm.State, inst *fsm.Installation, newID IDFunc) (fronts []string, instances []*fsm.Instance, err error) {
	p := NewPlanner(st, newID)
	var missing []string
	instances, err = p.PlaceBacks(inst.Name, inst.PerInstance, inst.Backs)
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
// down removes lost, failed and pending instances first, then by id.
func PlanScale(st *fsm.State, name string, fronts, backs int, newID IDFunc) (*fsm.Plan, error) {
	inst, ok := st.Installations[name]
	if !ok {
		return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no installation %q", name)}
	}
	p := NewPlanner(st, newID)
	plan := &fsm.Plan{}
	cur := st.InstancesOf(name)
	if backs < len(cur) {
		sort.SliceStable(cur, func(i, j int) bool { return removalRank(cur[i]) > removalRank(cur[j]) })
		for _, in := range cur[:len(cur)-backs] {
			plan.Remove = append(plan.Remove, in.ID)
			p.Release(in, inst.PerInstance)
		}
	}
	add, err := p.PlaceBacks(name, inst.PerInstance, backs-len(cur))
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

func removalRank(in *fsm.Instance) int {
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
func PlanDecommission(st *fsm.State, hostIDs []string, newID IDFunc) (*fsm.Plan, error) {
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
	p := NewPlanner(markStatus(st, hostIDs, fsm.HostDraining), newID)
	for _, in := range st.SortedInstances() {
		if !gone[in.HostID] {
			continue
		}
		inst := st.Installations[in.Installation]
		add, err := p.PlaceBacks(in.Installation, inst.PerInstance, 1)
		if err != nil {
			return nil, fmt.Errorf("cannot move instance %s of %q: %w", in.ID, in.Installation, err)
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
func PlanRepair(st *fsm.State, down []string, newID IDFunc) *fsm.Plan {
	plan := &fsm.Plan{}
	for _, id := range down {
		plan.Hosts = append(plan.Hosts, fsm.HostStatusChange{HostID: id, Status: fsm.HostDown})
	}
	view := markStatus(st, down, fsm.HostDown)
	p := NewPlanner(view, newID)
	for _, in := range view.SortedInstances() {
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
		need := view.InstanceRelease(in).PerInstance
		p.Release(in, need)
		add, err := p.PlaceBacks(in.Installation, need, 1)
		if err != nil {
			p.mark(in.Installation, in.HostID) // stays where it is, lost
			p.free[in.HostID] = p.free[in.HostID].Sub(need)
			p.ports[in.HostID][in.Port] = true
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
