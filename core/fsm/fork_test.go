package fsm_test

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// more commands after script(): one that fails halfway (its first instance
// is fine, its second takes a port in use), then ones that succeed and touch
// what the failed one had touched.
func afterScript() []*fsm.Command {
	return []*fsm.Command{
		{Type: fsm.CmdPlan, RequestID: "bad", Plan: &fsm.Plan{
			Update: []fsm.InstanceUpdate{{ID: "i2", State: fsm.InstanceFailed}},
			Add: []*fsm.Instance{
				{ID: "i3", Installation: "site", HostID: "h1", Port: 5001},
				{ID: "i4", Installation: "site", HostID: "h2", Port: 5000},
			},
			Hosts: []fsm.HostStatusChange{{HostID: "h3", Status: fsm.HostDraining}},
		}},
		{Type: fsm.CmdPlan, RequestID: "good", Plan: &fsm.Plan{
			Update: []fsm.InstanceUpdate{{ID: "i2", State: fsm.InstanceRunning}},
			Remove: []string{"i1"},
			Add:    []*fsm.Instance{{ID: "i5", Installation: "site", HostID: "h1", Port: 5000}},
		}},
		{Type: fsm.CmdSetHostRegion, Host: &fsm.Host{ID: "h1", Region: "eu"}},
		{Type: fsm.CmdSetHostAnnounced, Host: &fsm.Host{ID: "h2", Region: "us", HTTPGateway: true}},
		{Type: fsm.CmdPlan, RequestID: "bad", Plan: &fsm.Plan{Remove: []string{"i2"}}}, // replayed: nothing happens
	}
}

func stateJSON(t *testing.T, st *fsm.State) string {
	t.Helper()
	b, err := json.Marshal(st)
	require.NoError(t, err)
	return string(b)
}

func entries(t *testing.T, from uint64, cmds []*fsm.Command) []*raft.Log {
	t.Helper()
	var logs []*raft.Log
	for i, c := range cmds {
		idx := from + uint64(i)
		cp := *c
		cp.Time = fsmtest.TimeAt(idx)
		data, err := json.Marshal(&cp)
		require.NoError(t, err)
		logs = append(logs, &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data})
	}
	return logs
}

// A batch gives every entry the outcome it gets alone and the same state,
// byte for byte, a failed entry in the middle included; the states
// published before it do not change.
func TestApplyBatchEqualsApplyOneByOne(t *testing.T) {
	cmds := append(script(), afterScript()...)
	logs := entries(t, 1, cmds)

	one := fsm.New()
	var want []any
	var published []*fsm.State
	var publishedJSON []string
	for _, l := range logs {
		want = append(want, one.Apply(l))
		published = append(published, one.State())
		publishedJSON = append(publishedJSON, stateJSON(t, one.State()))
	}
	// Raft hands a batching FSM its membership changes too: no outcome,
	// no change.
	member := &raft.Log{Index: uint64(len(logs)) + 1, Term: 1, Type: raft.LogConfiguration, Data: []byte{0x81}}
	want = append(want, one.Apply(member))
	require.Nil(t, want[len(want)-1])
	logs = append(logs, member)
	for _, split := range []int{1, 3, len(script()), len(logs)} {
		batch := fsm.New()
		var got []any
		for from := 0; from < len(logs); from += split {
			got = append(got, batch.ApplyBatch(logs[from:min(from+split, len(logs))])...)
		}
		require.Equal(t, want, got, "batches of %d", split)
		require.Equal(t, stateJSON(t, one.State()), stateJSON(t, batch.State()), "batches of %d", split)
	}
	for i, st := range published {
		require.Equal(t, publishedJSON[i], stateJSON(t, st), "state published after entry %d changed later", i+1)
	}
	last := want[len(script())].(fsm.Result)
	require.ErrorContains(t, last.Err, "2 instances on host h1 (at most 1 allowed)")
	st := one.State()
	require.Equal(t, fsm.InstanceRunning, st.Instances["i2"].State)
	require.Equal(t, fsm.HostReady, st.Hosts["h3"].Status, "the failed plan's host change is gone")
	require.NotContains(t, st.Instances, "i3")
	require.True(t, want[len(want)-2].(fsm.Result).Replayed)
}

// The index apply keeps answers what a walk over the instances answers.
func TestUsageIndexFollowsApply(t *testing.T) {
	f := fsm.New()
	for _, l := range entries(t, 1, append(script(), afterScript()...)) {
		f.Apply(l)
	}
	st := f.State()
	walked := st.Clone() // a clone has no index: its Usage walks
	for _, h := range []string{"h1", "h2", "h3", "nope"} {
		require.Equal(t, walked.Usage().Host(h), st.Usage().Host(h), h)
		require.Equal(t, walked.InstancesOn(h), st.InstancesOn(h), h)
	}
	require.Equal(t, walked.InstancesOf("site"), st.InstancesOf("site"))
	require.Equal(t, fsm.HostUsage{Reserved: fsm.Resources{MilliCPU: 500, MemoryMB: 256, DiskMB: 10}, Instances: 1}, st.Usage().Host("h1"))
	require.NoError(t, st.CheckInvariants())

	restored := fsmtest.Restore(t, fsmtest.Persist(t, f))
	require.Equal(t, st.Usage().Host("h1"), restored.State().Usage().Host("h1"))
}

// A copy of a published state with other instances (the API's view for an
// app owner keeps only theirs) must not answer from the index of the
// original's instances.
func TestUsageIndexIsNotUsedForOtherInstances(t *testing.T) {
	f := fsm.New()
	for _, l := range entries(t, 1, script()) {
		f.Apply(l)
	}
	st := f.State()
	require.NotEmpty(t, st.InstancesOn("h2"))
	view := *st
	view.Instances = map[string]*fsm.Instance{"i1": st.Instances["i1"]}
	require.Empty(t, view.InstancesOn("h2"))
	require.Equal(t, fsm.Resources{}, view.Reserved("h2"))
	require.Equal(t, fsm.HostUsage{}, view.Usage().Host("h2"))
	require.Len(t, view.InstancesOf("site"), 1)
}
