package cluster

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"
)

// readFence confirms leadership for linearizable reads. A read may be
// answered from the leader's state only if the node still led after the read
// arrived and has applied everything committed before: a leader that was
// paused (SIGSTOP) while the others elected a new one, or one still
// replaying its log after a restart, would otherwise answer from an old state
// (both found by e2e/chaos). A raft barrier started after the read arrived
// proves both: it commits only with a quorum in this leader's term, and it
// returns once every earlier entry is applied. raft's VerifyLeader does not
// suffice: a heartbeat answer sent before the pause can confirm it after.
// Reads that arrive while a barrier runs wait for the next one, so there is
// one barrier per batch of reads, not one per read.
type readFence struct {
	mu      sync.Mutex
	running bool
	waiting []chan error
}

// ReadBarrier returns nil once a barrier started after the call has
// committed on this node as leader; ErrNotLeader (or raft's error) otherwise.
func (n *Node) ReadBarrier() error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	ch := make(chan error, 1)
	f := &n.fence
	f.mu.Lock()
	f.waiting = append(f.waiting, ch)
	if !f.running {
		f.running = true
		go n.runFence()
	}
	f.mu.Unlock()
	return <-ch
}

func (n *Node) runFence() {
	f := &n.fence
	for {
		f.mu.Lock()
		batch := f.waiting
		f.waiting = nil
		if len(batch) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		err := n.Raft.Barrier(n.cfg.ApplyTimeout).Error()
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			err = ErrNotLeader
		} else if err != nil {
			err = fmt.Errorf("confirming leadership: %w", err)
		}
		for _, ch := range batch {
			ch <- err
		}
	}
}
