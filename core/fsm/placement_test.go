package fsm_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

func TestInstancesPerHostFollowMaxPerHost(t *testing.T) {
	for _, tc := range []struct {
		name      string
		placement *fsm.Placement
		onOneHost int
		err       string
	}{
		{name: "one per host by default", onOneHost: 1},
		{name: "two refused by default", onOneHost: 2, err: "2 instances on host h1 (at most 1 allowed)"},
		{name: "max_per_host 1 is the default", placement: &fsm.Placement{MaxPerHost: 1}, onOneHost: 2, err: "at most 1 allowed"},
		{name: "three allowed by max_per_host 3", placement: &fsm.Placement{MaxPerHost: 3}, onOneHost: 3},
		{name: "four refused by max_per_host 3", placement: &fsm.Placement{MaxPerHost: 3}, onOneHost: 4, err: "4 instances on host h1 (at most 3 allowed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fsm.New()
			cmds := script()[:6] // operator, token, hosts, app
			for _, c := range cmds {
				require.NoError(t, fsmtest.Apply(t, f, c).Err)
			}
			var ins []*fsm.Instance
			for i := range tc.onOneHost {
				ins = append(ins, &fsm.Instance{ID: string(rune('a' + i)), Installation: "site", HostID: "h1", Port: fsm.MinPort + i})
			}
			res := fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{
				Name: "site", App: "web", Fronts: 1, Backs: tc.onOneHost, Domain: "site.example", ContainerPort: 80,
				PerInstance: fsm.Resources{MilliCPU: 100, MemoryMB: 64, DiskMB: 1}, FrontHosts: []string{"h3"}, Placement: tc.placement,
			}, Instances: ins})
			if tc.err == "" {
				require.NoError(t, res.Err)
				require.Len(t, f.State().InstancesOn("h1"), tc.onOneHost)
				return
			}
			require.ErrorContains(t, res.Err, tc.err)
			require.Equal(t, fsm.CodeConflict, fsm.CodeOf(res.Err))
		})
	}
}

// Snapshots from before host features and placement existed decode, and a
// state that uses none of them encodes exactly as before (no new keys).
func TestPlacementFieldsAreOptionalInSnapshots(t *testing.T) {
	old := `{"index":3,"hosts":{"h1":{"id":"h1","name":"back1","role":"back","public_key":"k","tunnel_address":"100.64.1.1",` +
		`"capacity":{"milli_cpu":1000,"memory_mb":512,"disk_mb":100},"status":"ready","token_id":"t","registered_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}},` +
		`"core_nodes":{},"apps":{},"installations":{"site":{"name":"site","app":"web","fronts":0,"backs":1,"domain":"d","per_instance":{"milli_cpu":1,"memory_mb":1,"disk_mb":1},` +
		`"container_port":80,"front_hosts":[],"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}},"instances":{},"tokens":{},"requests":{},"request_order":[]}`
	var st fsm.State
	require.NoError(t, json.Unmarshal([]byte(old), &st))
	h, inst := st.Hosts["h1"], st.Installations["site"]
	require.Empty(t, h.Arch+h.Storage+h.Region+h.Lender)
	require.Nil(t, h.Labels)
	require.Nil(t, inst.Placement)
	require.Equal(t, 1, inst.PerHostLimit())
	require.Empty(t, st.PlacementPolicy)
	again, err := json.Marshal(&st)
	require.NoError(t, err)
	require.JSONEq(t, old, string(again))
	for _, key := range []string{"arch", "storage", "region", "lender", "labels", "placement"} {
		require.NotContains(t, string(again), `"`+key+`"`)
	}
}
