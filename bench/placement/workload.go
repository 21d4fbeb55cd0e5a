// Package placement simulates placement policies: it replays a stream of
// installation requests (arrivals, lifetimes, sizes, requirements, load) over
// a simulated fleet of heterogeneous Backs through the real scheduler and the
// real FSM, and reports denials, Backs left completely free and the
// fragmentation of free capacity for each policy. It is a simulator, not a
// timed test: nothing here measures speed.
package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"

	"potluck/core/fsm"
)

// HostClass is one kind of Back in the simulated fleet.
type HostClass struct {
	Name     string
	Share    float64 // of the fleet
	Capacity fsm.Resources
	Arch     string
	Storage  string
}

// Fleet is the simulated fleet's mix: lenders' spare machines, from small
// HDD boxes to large SSD servers, some of them ARM. Fixed before any run;
// not tuned to any policy.
var Fleet = []HostClass{
	{"small-hdd", 0.35, fsm.Resources{MilliCPU: 2000, MemoryMB: 4096, DiskMB: 100_000}, "amd64", "hdd"},
	{"medium-ssd", 0.30, fsm.Resources{MilliCPU: 4000, MemoryMB: 8192, DiskMB: 200_000}, "amd64", "ssd"},
	{"large-ssd", 0.15, fsm.Resources{MilliCPU: 8000, MemoryMB: 32768, DiskMB: 500_000}, "amd64", "ssd"},
	{"arm-ssd", 0.20, fsm.Resources{MilliCPU: 4000, MemoryMB: 8192, DiskMB: 100_000}, "arm64", "ssd"},
}

// Size is one kind of instance reservation.
type Size struct {
	Name  string
	Share float64
	Need  fsm.Resources
}

// Sizes of instances requested (the apps people deploy on lent machines:
// mostly small web services, some databases and workers).
var Sizes = []Size{
	{"tiny", 0.30, fsm.Resources{MilliCPU: 250, MemoryMB: 256, DiskMB: 1000}},
	{"small", 0.30, fsm.Resources{MilliCPU: 500, MemoryMB: 512, DiskMB: 2000}},
	{"medium", 0.20, fsm.Resources{MilliCPU: 1000, MemoryMB: 2048, DiskMB: 10_000}},
	{"large", 0.15, fsm.Resources{MilliCPU: 2000, MemoryMB: 4096, DiskMB: 20_000}},
	{"xlarge", 0.05, fsm.Resources{MilliCPU: 4000, MemoryMB: 12288, DiskMB: 50_000}},
}

// Workload knobs, fixed before any run (see docs/benchmarks.md).
const (
	// Regions the fleet is spread over; lenders own LenderSize hosts each.
	Regions    = 3
	LenderSize = 4
	// MeanLifetime of an installation, in simulated time units; arrivals
	// are Poisson with the rate that gives the requested offered load.
	MeanLifetime = 1.0
	// Shares of requests with each requirement or constraint.
	ShareNeedsAMD64   = 0.20 // requires arch=amd64
	ShareNeedsARM64   = 0.05 // requires arch=arm64
	ShareNeedsSSD     = 0.15 // requires storage=ssd
	ShareSpreadLender = 0.30 // of multi-instance requests: at most 1 per lender
	ShareColocate     = 0.20 // of multi-instance requests: up to 2 per Back
)

// Request is one installation asked for.
type Request struct {
	Name      string
	Arrive    float64
	Lifetime  float64
	Backs     int
	Size      Size
	Placement *fsm.Placement
	// Use is the share of its reservation each instance really uses
	// (what a forecast of its load would predict), 0.2–1.0.
	Use float64
}

// Host is one simulated Back.
type Host struct {
	ID, Name string
	Class    HostClass
	Region   string
	Lender   string
}

// MakeFleet draws n hosts from Fleet, deterministically for a seed.
func MakeFleet(n int, rng *rand.Rand) []Host {
	out := make([]Host, n)
	for i := range out {
		c := pick(rng, len(Fleet), func(i int) float64 { return Fleet[i].Share })
		out[i] = Host{
			ID:     hostID(i),
			Name:   hostName(i),
			Class:  Fleet[c],
			Region: "r" + strconv.Itoa(i%Regions),
			Lender: "lender" + strconv.Itoa(i/LenderSize),
		}
	}
	return out
}

// MakeRequests draws count requests whose offered CPU load, averaged over
// time, is load × the fleet's CPU (so load 0.7 asks for 70 % of every
// core if nothing were denied).
func MakeRequests(count int, fleet []Host, load float64, rng *rand.Rand) []Request {
	var fleetCPU float64
	for _, h := range fleet {
		fleetCPU += float64(h.Class.Capacity.MilliCPU)
	}
	var meanCPU, meanBacks float64
	for _, s := range Sizes {
		meanCPU += s.Share * float64(s.Need.MilliCPU)
	}
	backs := []struct {
		n     int
		share float64
	}{{1, 0.5}, {2, 0.3}, {3, 0.2}}
	for _, b := range backs {
		meanBacks += float64(b.n) * b.share
	}
	// Little's law: live installations = rate × lifetime.
	rate := load * fleetCPU / (meanCPU * meanBacks * MeanLifetime)
	out := make([]Request, count)
	t := 0.0
	for i := range out {
		t += rng.ExpFloat64() / rate
		r := Request{
			Name:     "app" + strconv.Itoa(i),
			Arrive:   t,
			Lifetime: rng.ExpFloat64() * MeanLifetime,
			Backs:    backs[pick(rng, len(backs), func(i int) float64 { return backs[i].share })].n,
			Size:     Sizes[pick(rng, len(Sizes), func(i int) float64 { return Sizes[i].Share })],
			Use:      0.2 + 0.8*rng.Float64(),
		}
		pl := &fsm.Placement{}
		switch x := rng.Float64(); {
		case x < ShareNeedsAMD64:
			pl.Requires = map[string]string{"arch": "amd64"}
		case x < ShareNeedsAMD64+ShareNeedsARM64:
			pl.Requires = map[string]string{"arch": "arm64"}
		}
		if rng.Float64() < ShareNeedsSSD {
			if pl.Requires == nil {
				pl.Requires = map[string]string{}
			}
			pl.Requires["storage"] = "ssd"
		}
		if r.Backs > 1 {
			if rng.Float64() < ShareSpreadLender {
				pl.Spread = []fsm.SpreadConstraint{{By: "lender", Max: 1}}
			}
			if rng.Float64() < ShareColocate {
				pl.MaxPerHost = 2
			}
		}
		if pl.Requires != nil || pl.Spread != nil || pl.MaxPerHost != 0 {
			r.Placement = pl
		}
		out[i] = r
	}
	return out
}

func pick(rng *rand.Rand, n int, share func(int) float64) int {
	x := rng.Float64()
	for i := range n {
		x -= share(i)
		if x < 0 {
			return i
		}
	}
	return n - 1
}

func hostID(i int) string   { return fmt.Sprintf("h-%05d", i) }
func hostName(i int) string { return fmt.Sprintf("back%05d", i) }

// median of xs (NaN for none).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
