package placement

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

func TestSimulateIsDeterministicAndChecksEveryPlacement(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	fleet := MakeFleet(12, rng)
	reqs := MakeRequests(300, fleet, 0.8, rng)
	for _, p := range Policies {
		t.Run(p.Name, func(t *testing.T) {
			a, err := Simulate(fleet, reqs, p, Options{Warmup: 0.25})
			require.NoError(t, err)
			b, err := Simulate(fleet, reqs, p, Options{Warmup: 0.25})
			require.NoError(t, err)
			require.Equal(t, a, b)
			viaFSM, err := Simulate(fleet, reqs, p, Options{Warmup: 0.25, ThroughFSM: true})
			require.NoError(t, err)
			require.Equal(t, a, viaFSM, "editing the state gives what the FSM gives")
			require.Equal(t, 225, a.Requests)
			require.Positive(t, a.Reserved)
			require.LessOrEqual(t, a.FreeHosts, 1.0)
		})
	}
}

func TestArriveRefusesAPlacementTheRequestForbids(t *testing.T) {
	amd := Host{ID: "h-a", Name: "a", Class: HostClass{Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1000, DiskMB: 1000}, Arch: "amd64"}, Lender: "l1"}
	arm := Host{ID: "h-b", Name: "b", Class: HostClass{Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1000, DiskMB: 1000}, Arch: "arm64"}, Lender: "l1"}
	small := Size{Need: fsm.Resources{MilliCPU: 600, MemoryMB: 100, DiskMB: 1}}
	for _, tc := range []struct {
		name  string
		req   Request
		hosts []string
		err   string
	}{
		{"wrong arch", Request{Name: "x", Backs: 1, Size: small, Placement: &fsm.Placement{Requires: map[string]string{"arch": "amd64"}}}, []string{"h-b"}, "requires arch=amd64"},
		{"two per lender", Request{Name: "x", Backs: 2, Size: small, Placement: &fsm.Placement{Spread: []fsm.SpreadConstraint{{By: "lender", Max: 1}}}}, []string{"h-a", "h-b"}, "more than 1 instances at l1"},
		{"two per host", Request{Name: "x", Backs: 2, Size: Size{Need: fsm.Resources{MilliCPU: 1}}}, []string{"h-a", "h-a"}, "more than 1 instances on a"},
		{"over capacity", Request{Name: "x", Backs: 2, Size: small, Placement: &fsm.Placement{MaxPerHost: 2}}, []string{"h-a", "h-a"}, "overfills a"},
		{"fine", Request{Name: "x", Backs: 2, Size: small}, []string{"h-a", "h-b"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &sim{hosts: map[string]*simHost{"h-a": {Host: amd}, "h-b": {Host: arm}}, placed: map[string][]*fsm.Instance{}}
			var ins []*fsm.Instance
			for _, h := range tc.hosts {
				ins = append(ins, &fsm.Instance{HostID: h})
			}
			err := s.arrive(tc.req, ins)
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, Violation)
			require.ErrorContains(t, err, tc.err)
		})
	}
}

func TestRunPrintsTableAndSummary(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Seeds, cfg.Hosts, cfg.Loads, cfg.RequestsPerHost = 2, []int{10}, []float64{0.9}, 20
	var out bytes.Buffer
	sum, err := Run(context.Background(), cfg, &out)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Contains(t, lines[0], "denied %")
	require.Len(t, lines, 1+len(Policies)+1)
	require.Regexp(t, regexp.MustCompile(`^placement: denials [+-]\d+\.\d % and free hosts [+-]\d+\.\d % vs spread$`), sum.Line())
}

func TestConfigValidate(t *testing.T) {
	bad := DefaultConfig()
	bad.Seeds, bad.Loads, bad.Warmup = 0, []float64{3}, 1
	err := bad.Validate()
	require.ErrorContains(t, err, "seeds must be at least 1")
	require.ErrorContains(t, err, "load 3.00 outside")
	require.ErrorContains(t, err, "warm-up 1.00 outside")
	require.NoError(t, DefaultConfig().Validate())
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, DefaultConfig(), io.Discard)
	require.ErrorIs(t, err, context.Canceled)
}
