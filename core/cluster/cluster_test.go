package cluster

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParsePeers(t *testing.T) {
	cases := []struct {
		in   string
		want []Peer
		err  string
	}{
		{in: "", want: nil},
		{in: "core1=10.0.0.1:8401", want: []Peer{{"core1", "10.0.0.1:8401"}}},
		{in: " core1=10.0.0.1:8401, core2=10.0.0.2:8401 ", want: []Peer{{"core1", "10.0.0.1:8401"}, {"core2", "10.0.0.2:8401"}}},
		{in: "core1", err: "want id=host:port"},
		{in: "core1=10.0.0.1", err: "missing port"},
		{in: "core1=a:1,core1=b:2", err: "listed twice"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePeers(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestOpenRejectsPeerListWithoutSelf(t *testing.T) {
	_, err := Open(Config{ID: "core9", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", RaftAdvertise: "127.0.0.1:1",
		Peers: []Peer{{"core1", "127.0.0.1:2"}}})
	require.ErrorContains(t, err, "does not contain this node")
}

func TestCurrent(t *testing.T) {
	dir := t.TempDir()
	// A member of a three-node group whose peers never start: no leader, so
	// its (empty) state must not be acted on.
	alone, err := Open(Config{ID: "core1", DataDir: dir, RaftBind: "127.0.0.1:0", RaftAdvertise: "127.0.0.1:1",
		Peers: []Peer{{"core1", "127.0.0.1:1"}, {"core2", "127.0.0.1:2"}, {"core3", "127.0.0.1:3"}}, Timing: FastTiming, RaftLogOutput: io.Discard})
	require.NoError(t, err)
	time.Sleep(3 * FastTiming.ElectionTimeout)
	require.False(t, alone.Current(), "a node without a majority is never current")
	require.NoError(t, alone.Close())

	leader, err := Open(Config{ID: "core1", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Timing: FastTiming, RaftLogOutput: io.Discard})
	require.NoError(t, err)
	defer leader.Close()
	require.Eventually(t, leader.IsLeader, 10*time.Second, 10*time.Millisecond)
	require.True(t, leader.Current(), "a leader is current once it passed its barrier")
	// Each call confirms anew (a barrier started then), not once per term:
	// a leader deposed while paused must not pass on an old barrier.
	before := leader.Raft.LastIndex()
	require.True(t, leader.Current())
	require.Greater(t, leader.Raft.LastIndex(), before, "Current on a leader took no fresh barrier")
}
