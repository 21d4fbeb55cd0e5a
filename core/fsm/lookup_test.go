package fsm

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLookupsPreferTheSameHostEveryTime: the one-pass lookups (no sort)
// pick what the sorted walks picked: a live host over decommissioned ones,
// then the lowest id, whatever the map order.
func TestLookupsPreferTheSameHostEveryTime(t *testing.T) {
	st := NewState()
	for _, h := range []*Host{
		{ID: "h-3", Name: "web", PublicKey: "k", Status: HostDecommissioned},
		{ID: "h-1", Name: "web", PublicKey: "k", Status: HostDecommissioned},
		{ID: "h-9", Name: "web", PublicKey: "k2", Status: HostReady},
		{ID: "h-5", Name: "db", PublicKey: "k3", Status: HostDecommissioned},
		{ID: "h-4", Name: "db", PublicKey: "k4", Status: HostDecommissioned},
	} {
		st.Hosts[h.ID] = h
	}
	tests := []struct {
		name string
		got  func() *Host
		want string
	}{
		{"a live host wins", func() *Host { return st.HostByName("web") }, "h-9"},
		{"else the lowest decommissioned id", func() *Host { return st.HostByName("db") }, "h-4"},
		{"a key held twice: the lowest id", func() *Host { return st.HostByKey("k") }, "h-1"},
		{"unknown name", func() *Host { return st.HostByName("nope") }, ""},
		{"unknown key", func() *Host { return st.HostByKey("nope") }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 { // map order varies between walks
				h := tc.got()
				if tc.want == "" {
					require.Nil(t, h)
					continue
				}
				require.Equal(t, tc.want, h.ID)
			}
		})
	}
}

// TestInvariantViolationReportedInIDOrder: with several violations, every
// node names the same one (the first by instance id), although the check
// first walks the maps unsorted.
func TestInvariantViolationReportedInIDOrder(t *testing.T) {
	st := NewState()
	st.Apps["a"] = &App{Name: "a"}
	st.Installations["i"] = &Installation{Name: "i", App: "a", Placement: &Placement{MaxPerHost: 100}}
	for h := range 5 {
		id := fmt.Sprintf("h-%d", h)
		st.Hosts[id] = &Host{ID: id, Name: id, Role: RoleBack, Status: HostReady, Capacity: Resources{MilliCPU: 1000, MemoryMB: 1000, DiskMB: 1000}}
		for n := range 2 { // two instances on one port of every host
			iid := fmt.Sprintf("i-%d-%d", h, n)
			st.Instances[iid] = &Instance{ID: iid, Installation: "i", HostID: id, Port: 5000}
		}
	}
	for range 20 {
		require.EqualError(t, st.checkInvariants(), "port 5000 on host h-0 used by i-0-0 and i-0-1")
	}
	delete(st.Instances, "i-0-1")
	for h := 1; h < 5; h++ {
		delete(st.Instances, fmt.Sprintf("i-%d-1", h))
	}
	require.NoError(t, st.checkInvariants())
}

// TestInstancesByInstallationMatchesInstancesOf: the grouped walk gives
// every installation what InstancesOf gives it, in the same order.
func TestInstancesByInstallationMatchesInstancesOf(t *testing.T) {
	st := NewState()
	for n := range 30 {
		id := fmt.Sprintf("i-%02d", (n*7)%30)
		st.Instances[id] = &Instance{ID: id, Installation: fmt.Sprintf("inst-%d", n%4)}
	}
	of := st.InstancesByInstallation()
	require.Len(t, of, 4)
	for _, name := range []string{"inst-0", "inst-1", "inst-2", "inst-3", "none"} {
		require.Equal(t, st.InstancesOf(name), of[name], name)
	}
}
