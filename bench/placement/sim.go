package placement

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"potluck/core/fsm"
	"potluck/core/scheduler"
)

// Policy is one placement policy under test.
type Policy struct {
	Name      string
	Scheduler string // scheduler.PolicySpread or scheduler.PolicyPack
	// Forecast feeds the scheduler each Back's real load (the instances'
	// Use) instead of their reservations, standing in for the forecast the
	// autoscaling metrics will give; it turns the headroom term on.
	Forecast bool
	// Headroom, when not 0, sets the headroom term's share explicitly.
	Headroom float64
}

// Policies compared by default: today's spread, pack as the leader runs it
// (forecast from reservations, so no headroom term), pack fed with the load,
// and pack with the headroom term on reservations.
var Policies = []Policy{
	{Name: "spread", Scheduler: scheduler.PolicySpread},
	{Name: "pack", Scheduler: scheduler.PolicyPack},
	{Name: "pack+forecast", Scheduler: scheduler.PolicyPack, Forecast: true},
	// Ablation: headroom kept on reservations (the forecast the leader has
	// today), showing what that term costs when nothing measures load.
	{Name: "pack+headroom", Scheduler: scheduler.PolicyPack, Headroom: scheduler.DefaultHeadroom},
}

// Large is the reference instance for fragmentation: free capacity on a Back
// that cannot take one is counted as fragmented.
var Large = fsm.Resources{MilliCPU: 2000, MemoryMB: 4096, DiskMB: 20_000}

// HotShare is the real CPU use above which a Back counts as hot.
const HotShare = 0.9

// Result of one policy over one request stream. Shares are averaged over
// simulated time after the warm-up.
type Result struct {
	Policy        string
	Requests      int     // requests arrived after the warm-up
	Denied        int     // of those, refused for lack of a fitting Back
	Impossible    int     // of those, refused even by the empty fleet
	FreeHosts     float64 // share of Backs with no instance
	Fragmentation float64 // share of free CPU on Backs too small for Large
	Hot           float64 // share of Backs whose real CPU use exceeds HotShare
	Reserved      float64 // share of the fleet's CPU reserved (the carried load)
}

// ImpossibleRate is Impossible / Requests.
func (r Result) ImpossibleRate() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Impossible) / float64(r.Requests)
}

// DenialRate is Denied / Requests.
func (r Result) DenialRate() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Denied) / float64(r.Requests)
}

// Violation is a placement on a Back that cannot run the instance (wrong
// features, over capacity, spread or per-host limit broken). The simulator
// checks every placement itself, independently of the scheduler.
var Violation = errors.New("placement violates the request")

// Options of one simulation.
type Options struct {
	// Warmup is the share of the stream replayed before metrics count.
	Warmup float64
	// ThroughFSM commits every decision through the real FSM (raft log
	// entries applied by fsm.FSM, whose Apply re-checks every invariant on a
	// copy of the state). Without it the simulator edits one fsm.State
	// between scheduler calls, as Apply would, which is about three times
	// faster; both give the same placements (tested).
	ThroughFSM bool
}

// Simulate replays reqs over fleet with pol through the real scheduler:
// each arrival is planned with scheduler.PlanInstallation on the current
// fsm.State, as the leader does, and committed (CmdCreateInstallation);
// each departure deletes its installation. Metrics count from the arrival of
// request Warmup×len(reqs).
func Simulate(fleet []Host, reqs []Request, pol Policy, o Options) (Result, error) {
	warmup := o.Warmup
	s := &sim{hosts: map[string]*simHost{}, res: Result{Policy: pol.Name}}
	if o.ThroughFSM {
		s.fsm = fsm.New()
	} else {
		s.st = fsm.NewState()
	}
	if err := s.boot(fleet); err != nil {
		return Result{}, err
	}
	opts := []scheduler.Option{scheduler.WithPolicy(pol.Scheduler)}
	if pol.Forecast {
		opts = append(opts, scheduler.WithDemand(loadDemand{s}))
	}
	if pol.Headroom != 0 {
		opts = append(opts, scheduler.WithHeadroom(pol.Headroom))
	}
	start := int(warmup * float64(len(reqs)))
	var deps departures
	ids := 0
	newID := func() string { ids++; return fmt.Sprintf("i-%07d", ids) }
	measuring := false
	for i, r := range reqs {
		for len(deps) > 0 && deps[0].at <= r.Arrive {
			d := heap.Pop(&deps).(departure)
			s.advance(d.at, measuring)
			if err := s.depart(d.req); err != nil {
				return Result{}, err
			}
		}
		s.advance(r.Arrive, measuring)
		if i == start {
			measuring, s.t0 = true, r.Arrive
		}
		inst := &fsm.Installation{
			Name: r.Name, App: "app", Fronts: 1, Backs: r.Backs, Domain: r.Name + ".sim",
			PerInstance: r.Size.Need, ContainerPort: 80, Placement: r.Placement,
		}
		fronts, ins, err := scheduler.PlanInstallation(s.state(), inst, newID, opts...)
		if measuring {
			s.res.Requests++
		}
		if err != nil {
			if fsm.CodeOf(err) != fsm.CodeConflict {
				return Result{}, fmt.Errorf("request %s: %w", r.Name, err)
			}
			if measuring {
				s.res.Denied++
				if _, _, err := scheduler.PlanInstallation(s.empty, inst, newID, opts...); err != nil {
					s.res.Impossible++
				}
			}
			continue
		}
		inst.FrontHosts = fronts
		if err := s.apply(&fsm.Command{Type: fsm.CmdCreateInstallation, Installation: inst, Instances: ins}); err != nil {
			return Result{}, fmt.Errorf("request %s: the FSM refused the scheduler's plan: %w", r.Name, err)
		}
		if err := s.arrive(r, ins); err != nil {
			return Result{}, err
		}
		heap.Push(&deps, departure{at: r.Arrive + r.Lifetime, req: r})
	}
	if span := s.t - s.t0; span > 0 {
		s.res.FreeHosts /= span
		s.res.Fragmentation /= span
		s.res.Hot /= span
		s.res.Reserved /= span
	}
	return s.res, nil
}

type simHost struct {
	Host
	reserved fsm.Resources
	use      fsm.Resources
	count    int
}

type sim struct {
	fsm      *fsm.FSM   // when committing through the FSM
	st       *fsm.State // otherwise
	empty    *fsm.State // the fleet with nothing placed
	index    uint64
	hosts    map[string]*simHost
	order    []*simHost
	fleetCPU float64
	placed   map[string][]*fsm.Instance // installation -> its instances
	t, t0    float64
	res      Result
}

func (s *sim) state() *fsm.State {
	if s.fsm != nil {
		return s.fsm.State()
	}
	return s.st
}

// apply commits c through the FSM, or edits the one state as Apply would
// for the commands the simulator sends.
func (s *sim) apply(c *fsm.Command) error {
	if s.fsm == nil {
		return s.edit(c)
	}
	s.index++
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.fsm.Apply(&raft.Log{Index: s.index, Data: data}).(fsm.Result).Err
}

func (s *sim) edit(c *fsm.Command) error {
	switch c.Type {
	case fsm.CmdCreateToken, fsm.CmdCreateApp:
	case fsm.CmdRegisterHost:
		h := *c.Host
		s.st.Hosts[h.ID] = &h
	case fsm.CmdCreateInstallation:
		inst := *c.Installation
		s.st.Installations[inst.Name] = &inst
		for _, in := range c.Instances {
			cp := *in
			s.st.Instances[cp.ID] = &cp
		}
	case fsm.CmdDeleteInstallation:
		for _, in := range s.placed[c.Name] {
			delete(s.st.Instances, in.ID)
		}
		delete(s.st.Installations, c.Name)
	default:
		return fmt.Errorf("simulator cannot apply %s", c.Type)
	}
	return nil
}

// boot registers the fleet (ready, with its features), one Front and the app.
func (s *sim) boot(fleet []Host) error {
	s.placed = map[string][]*fsm.Instance{}
	cmds := []*fsm.Command{
		{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "tok", Hash: "h"}},
		{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "app", Image: "app:1", ContainerPort: 80}},
		{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: "front", Name: "front", Role: fsm.RoleFront, PublicKey: "front", TokenID: "tok", Status: fsm.HostReady}},
	}
	for _, h := range fleet {
		cmds = append(cmds, &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{
			ID: h.ID, Name: h.Name, Role: fsm.RoleBack, PublicKey: "key-" + h.ID, TokenID: "tok", Status: fsm.HostReady,
			Capacity: h.Class.Capacity, Arch: h.Class.Arch, Storage: h.Class.Storage, Region: h.Region, Lender: h.Lender,
		}})
		sh := &simHost{Host: h}
		s.hosts[h.ID] = sh
		s.order = append(s.order, sh)
		s.fleetCPU += float64(h.Class.Capacity.MilliCPU)
	}
	s.empty = fsm.NewState()
	for _, c := range cmds {
		if err := s.apply(c); err != nil {
			return fmt.Errorf("boot: %w", err)
		}
		if c.Type == fsm.CmdRegisterHost {
			h := *c.Host
			s.empty.Hosts[h.ID] = &h
		}
	}
	return nil
}

// arrive checks the placement against the request, independently of the
// scheduler, and books it.
func (s *sim) arrive(r Request, ins []*fsm.Instance) error {
	if len(ins) != r.Backs {
		return fmt.Errorf("%w: %s wanted %d instances, got %d", Violation, r.Name, r.Backs, len(ins))
	}
	perHost, perLender := map[string]int{}, map[string]int{}
	limit := 1
	if r.Placement != nil && r.Placement.MaxPerHost > 1 {
		limit = r.Placement.MaxPerHost
	}
	for _, in := range ins {
		h := s.hosts[in.HostID]
		if h == nil {
			return fmt.Errorf("%w: %s placed on unknown host %s", Violation, r.Name, in.HostID)
		}
		if r.Placement != nil {
			for k, v := range r.Placement.Requires {
				have := map[string]string{"arch": h.Class.Arch, "storage": h.Class.Storage}[k]
				if have != v {
					return fmt.Errorf("%w: %s requires %s=%s, placed on %s with %q", Violation, r.Name, k, v, h.Name, have)
				}
			}
			for _, c := range r.Placement.Spread {
				if c.By != "lender" {
					return fmt.Errorf("simulator knows only lender spread, not %q", c.By)
				}
				if perLender[h.Lender]++; perLender[h.Lender] > c.Max {
					return fmt.Errorf("%w: %s has more than %d instances at %s", Violation, r.Name, c.Max, h.Lender)
				}
			}
		}
		if perHost[h.ID]++; perHost[h.ID] > limit {
			return fmt.Errorf("%w: %s has more than %d instances on %s", Violation, r.Name, limit, h.Name)
		}
		h.reserved = h.reserved.Add(r.Size.Need)
		h.use = h.use.Add(scale(r.Size.Need, r.Use))
		h.count++
		if !h.Class.Capacity.Fits(h.reserved) {
			return fmt.Errorf("%w: %s overfills %s (%+v > %+v)", Violation, r.Name, h.Name, h.reserved, h.Class.Capacity)
		}
	}
	s.placed[r.Name] = ins
	return nil
}

func (s *sim) depart(r Request) error {
	if err := s.apply(&fsm.Command{Type: fsm.CmdDeleteInstallation, Name: r.Name}); err != nil {
		return fmt.Errorf("delete %s: %w", r.Name, err)
	}
	for _, in := range s.placed[r.Name] {
		h := s.hosts[in.HostID]
		h.reserved = h.reserved.Sub(r.Size.Need)
		h.use = h.use.Sub(scale(r.Size.Need, r.Use))
		h.count--
	}
	delete(s.placed, r.Name)
	return nil
}

// advance integrates the time-averaged shares up to t.
func (s *sim) advance(t float64, measuring bool) {
	dt := t - s.t
	s.t = t
	if !measuring || dt <= 0 {
		return
	}
	var free, hot int
	var freeCPU, fragCPU, reserved float64
	for _, h := range s.order {
		if h.count == 0 {
			free++
		}
		c := h.Class.Capacity
		if float64(h.use.MilliCPU) > HotShare*float64(c.MilliCPU) {
			hot++
		}
		left := c.Sub(h.reserved)
		freeCPU += float64(left.MilliCPU)
		if !left.Fits(Large) {
			fragCPU += float64(left.MilliCPU)
		}
		reserved += float64(h.reserved.MilliCPU)
	}
	n := float64(len(s.order))
	s.res.FreeHosts += dt * float64(free) / n
	s.res.Hot += dt * float64(hot) / n
	if freeCPU > 0 {
		s.res.Fragmentation += dt * fragCPU / freeCPU
	}
	s.res.Reserved += dt * reserved / s.fleetCPU
}

func scale(r fsm.Resources, f float64) fsm.Resources {
	return fsm.Resources{MilliCPU: int64(float64(r.MilliCPU) * f), MemoryMB: int64(float64(r.MemoryMB) * f), DiskMB: int64(float64(r.DiskMB) * f)}
}

// loadDemand gives the scheduler each Back's real load: the forecast a
// perfect forecaster of this stationary load would make.
type loadDemand struct{ s *sim }

func (d loadDemand) Load(h *fsm.Host, _ fsm.Resources) fsm.Resources {
	if sh := d.s.hosts[h.ID]; sh != nil {
		return sh.use
	}
	return fsm.Resources{}
}

type departure struct {
	at  float64
	req Request
}

type departures []departure

func (d departures) Len() int           { return len(d) }
func (d departures) Less(i, j int) bool { return d[i].at < d[j].at }
func (d departures) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *departures) Push(x any)        { *d = append(*d, x.(departure)) }
func (d *departures) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}
