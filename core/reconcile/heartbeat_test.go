package reconcile

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// TestLastHeartbeat: the leader says when a host last heartbeated to it;
// the grace a new leader gives is not a heartbeat, and a follower or a new
// leader knows none.
func TestLastHeartbeat(t *testing.T) {
	f := newFixture(t, nil)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.host("b2", fsm.RoleBack, fsm.HostReady)
	f.tick() // the first round gives both a TTL of grace

	_, ok := f.rec.LastHeartbeat("b1")
	require.False(t, ok, "grace is no heartbeat")
	f.clock.Advance(5 * time.Second)
	f.beat("b1")
	at, ok := f.rec.LastHeartbeat("b1")
	require.True(t, ok)
	require.Equal(t, f.clock.Now(), at)
	_, ok = f.rec.LastHeartbeat("b2")
	require.False(t, ok)

	f.node.setLeader(false)
	f.tick()
	_, ok = f.rec.LastHeartbeat("b1")
	require.False(t, ok, "a follower does not know")
	f.node.setLeader(true)
	f.tick()
	_, ok = f.rec.LastHeartbeat("b1")
	require.False(t, ok, "a new term starts without heartbeats")
}

// TestHeartbeatBeforeTheTermsFirstRound: a heartbeat that reaches a new
// leader before its first round is kept (the first round used to start the
// term and forget it, so the UI said "not since the leader was elected").
func TestHeartbeatBeforeTheTermsFirstRound(t *testing.T) {
	f := newFixture(t, nil)
	f.host("b1", fsm.RoleBack, fsm.HostReady)
	f.beat("b1")
	at := f.clock.Now()
	f.tick()
	got, ok := f.rec.LastHeartbeat("b1")
	require.True(t, ok, "the heartbeat before the first round was forgotten")
	require.Equal(t, at, got)
}
