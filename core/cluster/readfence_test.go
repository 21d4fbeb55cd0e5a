package cluster

import (
	"io"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReadBarrierBatchesReads: reads that arrive together share barriers
// (each barrier is a raft log entry, so the log grows by the barriers run,
// not by the reads), and a node that does not lead refuses at once.
func TestReadBarrierBatchesReads(t *testing.T) {
	n, err := Open(Config{ID: "core1", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", Timing: FastTiming, RaftLogOutput: io.Discard})
	require.NoError(t, err)
	defer n.Close()
	require.Eventually(t, n.IsLeader, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, n.CatchUp())

	const reads = 64
	before := n.Raft.LastIndex()
	start := make(chan struct{})
	errs := make(chan error, reads)
	var wg sync.WaitGroup
	for range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- n.ReadBarrier()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	barriers := n.Raft.LastIndex() - before
	require.GreaterOrEqual(t, barriers, uint64(1), "a read is fenced by a barrier of its own time")
	require.Less(t, barriers, uint64(reads/2), "%d reads ran %d barriers", reads, barriers)

	follower, err := Open(Config{ID: "core2", DataDir: t.TempDir(), RaftBind: "127.0.0.1:0", RaftAdvertise: "127.0.0.1:1",
		Peers: []Peer{{"core1", "127.0.0.1:2"}, {"core2", "127.0.0.1:1"}, {"core3", "127.0.0.1:3"}}, Timing: FastTiming, RaftLogOutput: io.Discard})
	require.NoError(t, err)
	defer follower.Close()
	require.ErrorIs(t, follower.ReadBarrier(), ErrNotLeader)
}
