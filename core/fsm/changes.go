package fsm

import "maps"

// maxChangeChain bounds how many batches back a state can say what
// changed: a reader further behind compares the states whole.
const maxChangeChain = 256

// A changeNode records which hosts and instances one batch of commands
// wrote (ids only: the states before and after hold the values). Every
// published state points at the node of the batch that made it, and each
// node at the one before, so a reader holding an older state asks what
// changed since in proportion to the change, not to the fleet (the agent
// API does, for every new state). Nodes hold ids, never states, and a chain
// is cut after maxChangeChain nodes, so old states are not kept alive.
type changeNode struct {
	from, to  uint64 // the index of the state the batch was applied to, and of its result
	hosts     []string
	instances []string
	restored  bool // a snapshot restore: nothing before it can be compared
	prev      *changeNode
	depth     int
}

// touchHost and touchInstance record a write of the fork's batch.
func (s *State) touchHost(id string) {
	if s.w != nil {
		s.w.touchedHosts[id] = struct{}{}
	}
}

func (s *State) touchInstance(id string) {
	if s.w != nil {
		s.w.touchedInstances[id] = struct{}{}
	}
}

// recordChanges closes the fork's batch: s gets the node saying what it
// wrote since the state it was forked from.
func (s *State) recordChanges() {
	prev := s.w.prevChanges
	depth := 1
	if prev != nil {
		depth = prev.depth + 1
	}
	if depth > maxChangeChain {
		prev, depth = nil, 1 // a new chain: the old one is let go
	}
	s.changes = &changeNode{
		from: s.w.from, to: s.Index, prev: prev, depth: depth,
		hosts:     keysOf(s.w.touchedHosts),
		instances: keysOf(s.w.touchedInstances),
	}
}

func keysOf(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		out = append(out, k)
	}
	return out
}

// ChangedSince returns the ids of the hosts and instances that the
// commands applied between old and s wrote (a superset of those that
// differ: a write may have left a value as it was), each once. old must be
// a state published before s by the same FSM. ok is false when s cannot
// tell (old is more than a few hundred batches behind, a snapshot was
// restored between them, or either was not published by an FSM): compare
// the states whole then.
func (s *State) ChangedSince(old *State) (hosts, instances []string, ok bool) {
	if old == nil {
		return nil, nil, false
	}
	if s == old {
		return nil, nil, true
	}
	if old.changes == nil {
		return nil, nil, false
	}
	seenHosts, seenInstances := map[string]struct{}{}, map[string]struct{}{}
	for n := s.changes; n != nil && !n.restored && n != old.changes; n = n.prev {
		for _, id := range n.hosts {
			seenHosts[id] = struct{}{}
		}
		for _, id := range n.instances {
			seenInstances[id] = struct{}{}
		}
		if n.prev == old.changes { // every batch after the one that made old
			return keysOf(seenHosts), keysOf(seenInstances), true
		}
	}
	return nil, nil, false
}
