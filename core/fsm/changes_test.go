package fsm_test

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// A state says which hosts and instances were written since an earlier one
// of the same FSM, and refuses to say across a restore.
func TestChangedSince(t *testing.T) {
	f := fsm.New()
	var states []*fsm.State
	for _, l := range entries(t, 1, append(script(), afterScript()...)) {
		f.Apply(l)
		states = append(states, f.State())
	}
	sorted := func(ids []string) []string { slices.Sort(ids); return ids }
	last := len(script()) - 1 // after the plan that marks i1 running
	tests := []struct {
		name             string
		old, cur         *fsm.State
		hosts, instances []string
		ok               bool
	}{
		{"itself", states[last], states[last], nil, nil, true},
		{"one state update", states[last-1], states[last], []string{}, []string{"i1"}, true},
		{"the create and the update", states[last-2], states[last], []string{}, []string{"i1", "i2"}, true},
		{"hosts registered", states[1], states[4], []string{"h1", "h2", "h3"}, []string{}, true},
		// after the script: a failed plan (nothing of it kept but its record),
		// a plan that moves i1 to i5, a region on h1, what h2 announced, a
		// replayed request
		{"the rest", states[last], states[len(states)-1], []string{"h1", "h2"}, []string{"i1", "i2", "i5"}, true},
		{"no earlier state", nil, states[last], nil, nil, false},
		{"the empty state before any batch", fsm.New().State(), states[0], nil, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hosts, instances, ok := tc.cur.ChangedSince(tc.old)
			require.Equal(t, tc.ok, ok)
			if ok {
				require.Equal(t, tc.hosts, sorted(hosts))
				require.Equal(t, tc.instances, sorted(instances))
			}
		})
	}

	restored := fsmtest.Restore(t, fsmtest.Persist(t, f))
	_, _, ok := restored.State().ChangedSince(states[last])
	require.False(t, ok, "a restore breaks the chain")
	before := restored.State()
	restored.Apply(entries(t, uint64(len(states)+1), afterScript()[2:3])[0])
	hosts, instances, ok := restored.State().ChangedSince(before)
	require.True(t, ok, "a chain starts again at the restored state")
	require.Equal(t, []string{"h1"}, hosts)
	require.Empty(t, instances)
}
