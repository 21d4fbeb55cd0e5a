package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"potluck/core/fsm"
)

// Placement policies, chosen per cluster (fsm.State.PlacementPolicy) and per
// installation (fsm.Placement.Policy, which wins).
const (
	// PolicySpread puts each instance on the Back with the most free
	// declared capacity (cpu, then memory, then disk): load is spread
	// evenly, and every Back ends up partly used. Today's behaviour and the
	// default.
	PolicySpread = fsm.PolicySpread
	// PolicyPack is demand-aware packing: among the Backs that can run the
	// instance it picks the lowest Score, which prefers the tightest fit on
	// the dominant resource, avoids opening an empty Back while a used one
	// fits, and keeps headroom for each Back's forecast load. Whole Backs
	// stay free for large requests and for their lenders.
	PolicyPack = fsm.PolicyPack
)

// Score weights of PolicyPack (see Score).
const (
	// EmptyHostPenalty is added for a Back that has no instance yet. It is
	// 1, the largest possible fit waste, so any used Back that fits wins
	// over every empty one.
	EmptyHostPenalty = 1.0
	// DefaultHeadroom is the share of each resource kept for forecast load
	// when a Demand forecast is given: a Back whose forecast load after
	// placement exceeds 1-Headroom of its capacity is penalised.
	DefaultHeadroom = 0.10
	// HotPenalty is the penalty for a Back whose forecast load would reach
	// its whole capacity; it grows linearly from 0 at 1-Headroom.
	HotPenalty = 1.0
)

// Demand forecasts the load of each Back over the placement horizon. The
// leader's default, ReservedDemand, uses what the instances reserve; once
// per-instance metrics are collected (the autoscaling issue), a forecast over
// them plugs in here.
type Demand interface {
	// Load returns the load expected on h, whose instances reserve
	// reserved. Instances placed by the same plan are added by the caller.
	Load(h *fsm.Host, reserved fsm.Resources) fsm.Resources
}

// ReservedDemand forecasts that every instance uses what it reserves.
type ReservedDemand struct{}

// Load returns reserved.
func (ReservedDemand) Load(_ *fsm.Host, reserved fsm.Resources) fsm.Resources { return reserved }

// Option tunes a plan.
type Option func(*Planner)

// WithDemand makes PolicyPack use d's forecast instead of reservations, and
// turns on the headroom term (DefaultHeadroom unless WithHeadroom says
// otherwise).
func WithDemand(d Demand) Option {
	return func(p *Planner) {
		p.demand = d
		if !p.headroomSet {
			p.headroom = DefaultHeadroom
		}
	}
}

// WithHeadroom sets the share of capacity kept for forecast load; 0 turns
// the headroom term off. Without it the term is on only with WithDemand:
// when the forecast is the reservations it would only keep Backs from filling
// up, since a reservation is a hard limit that load never exceeds.
func WithHeadroom(h float64) Option {
	return func(p *Planner) { p.headroom, p.headroomSet = h, true }
}

// WithPolicy overrides the cluster's default policy (installations that name
// their own still win).
func WithPolicy(name string) Option { return func(p *Planner) { p.policy = name } }

// Candidate is what a policy knows about one Back that can take an instance.
type Candidate struct {
	Host      *fsm.Host
	Free      fsm.Resources // declared capacity minus reservations, before this instance
	Load      fsm.Resources // forecast load, before this instance
	Instances int           // instances on the host, of any installation
}

// Score is PolicyPack's rank of a candidate for an instance needing need;
// lower is better. With u the dominant share of the capacity (the smaller
// of declared and measured, as for fitting) reserved after placement (max
// over cpu, memory and disk of reserved/capacity) and f the same share of
// the forecast load after placement:
//
//	score = (1 - u)                                      fit waste: best fit on the dominant resource
//	      + EmptyHostPenalty      if the Back has no instance yet
//	      + HotPenalty * (f - (1 - headroom)) / headroom   if f > 1 - headroom
//
// The first term packs, the second keeps whole Backs free while a used one
// fits (and among empty Backs prefers the one the instance fills most, so
// large Backs stay whole for large requests), the third steers instances
// away from Backs whose forecast load leaves no headroom. headroom 0 drops
// the third term (the leader's default while the forecast is the
// reservations).
func Score(c Candidate, need fsm.Resources, headroom float64) float64 {
	capacity := c.Host.Schedulable() // what Free is a part of
	reserved := capacity.Sub(c.Free).Add(need)
	s := 1 - dominantShare(reserved, capacity)
	if c.Instances == 0 {
		s += EmptyHostPenalty
	}
	if headroom > 0 {
		if f := dominantShare(c.Load.Add(need), capacity); f > 1-headroom {
			s += HotPenalty * (f - (1 - headroom)) / headroom
		}
	}
	return s
}

// dominantShare is the largest share of capacity that use takes over cpu,
// memory and disk (resources the host declares none of are skipped).
func dominantShare(use, capacity fsm.Resources) float64 {
	share := 0.0
	for _, r := range [][2]int64{{use.MilliCPU, capacity.MilliCPU}, {use.MemoryMB, capacity.MemoryMB}, {use.DiskMB, capacity.DiskMB}} {
		if r[1] > 0 {
			share = max(share, float64(r[0])/float64(r[1]))
		}
	}
	return share
}

// policyOf resolves the policy of an installation: its own, else the plan's
// override, else the cluster's, else spread.
func (p *Planner) policyOf(inst *fsm.Installation) string {
	if inst.Placement != nil && inst.Placement.Policy != "" {
		return inst.Placement.Policy
	}
	if p.policy != "" {
		return p.policy
	}
	if p.st.PlacementPolicy != "" {
		return p.st.PlacementPolicy
	}
	return PolicySpread
}

// ValidatePolicy says whether name is a known policy ("" inherits).
func ValidatePolicy(name string) error {
	switch name {
	case "", PolicySpread, PolicyPack:
		return nil
	}
	return &fsm.Error{Code: fsm.CodeInvalid, Message: fmt.Sprintf("unknown placement policy %q (%s or %s)", name, PolicySpread, PolicyPack)}
}

// ValidatePlacement checks an installation's placement settings, so bad
// input is refused with a clear error instead of placing nothing.
func ValidatePlacement(pl *fsm.Placement) error {
	if pl == nil {
		return nil
	}
	if err := ValidatePolicy(pl.Policy); err != nil {
		return err
	}
	var bad []string
	if pl.MaxPerHost < 0 {
		bad = append(bad, fmt.Sprintf("max_per_host %d is negative", pl.MaxPerHost))
	}
	keys := make([]string, 0, len(pl.Requires))
	for k := range pl.Requires {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" || pl.Requires[k] == "" {
			bad = append(bad, fmt.Sprintf("requirement %q=%q needs a key and a value", k, pl.Requires[k]))
		}
	}
	for _, c := range pl.Spread {
		if c.By == "" || c.Max < 1 {
			bad = append(bad, fmt.Sprintf("spread constraint by %q max %d needs a feature and a max of at least 1", c.By, c.Max))
		}
	}
	if len(bad) > 0 {
		return &fsm.Error{Code: fsm.CodeInvalid, Message: "invalid placement: " + strings.Join(bad, "; ")}
	}
	return nil
}

// Feature returns a host's value for a feature key: arch, storage, region,
// lender, or else the operator label of that name ("" when unknown).
func Feature(h *fsm.Host, key string) string {
	switch key {
	case "arch":
		return h.Arch
	case "storage":
		return h.Storage
	case "region":
		return h.Region
	case "lender":
		return h.Lender
	}
	return h.Labels[key]
}

// meets reports whether h has every required feature, and if not, which one
// is missing first (in key order).
func meets(h *fsm.Host, pl *fsm.Placement) (bool, string) {
	if pl == nil || len(pl.Requires) == 0 {
		return true, ""
	}
	keys := make([]string, 0, len(pl.Requires))
	for k := range pl.Requires {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if Feature(h, k) != pl.Requires[k] {
			return false, k + "=" + pl.Requires[k]
		}
	}
	return true, ""
}
