package scheduler

import (
	"container/heap"
	"strings"

	"potluck/core/fsm"
)

// spreadQueue is the ready Backs in spread's order: most free capacity
// first, ties to the lower id. A heap rather than a sorted list: a
// placement looks at the few hosts on top, and a host whose free capacity
// changed is pushed again, its old entry (now stale) skipped when it
// surfaces. A plan of k placements over H Backs costs O(H + k log H); the
// sorted list it replaces cost O(H log H) to build and O(H) per placement to
// keep in order, most of a create's planning time at 5,000 hosts.
type spreadQueue []byFree

type byFree struct {
	host *fsm.Host
	free fsm.Resources // when pushed; stale once the host's free capacity changed
}

func (q spreadQueue) Len() int           { return len(q) }
func (q spreadQueue) Less(i, j int) bool { return spreadCmp(q[i], q[j]) < 0 }
func (q spreadQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *spreadQueue) Push(x any)        { *q = append(*q, x.(byFree)) }
func (q *spreadQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// spreadCmp orders spread's candidates: more free first, then lower id.
func spreadCmp(a, b byFree) int {
	if a.free != b.free {
		if moreFree(a.free, b.free) {
			return -1
		}
		return 1
	}
	return strings.Compare(a.host.ID, b.host.ID)
}

// spreadBest returns the first ready Back in spread's order that can take
// one more instance of inst, or nil.
func (p *Planner) spreadBest(inst *fsm.Installation, need fsm.Resources) *fsm.Host {
	if p.spread == nil {
		q := make(spreadQueue, len(p.backs))
		for i, h := range p.backs {
			// What freeOf answers, without caching it for every Back: only
			// the few that surface are looked at again.
			free, ok := p.free[h.ID]
			if !ok {
				free = p.stateFree(h)
			}
			q[i] = byFree{h, free}
		}
		heap.Init(&q)
		p.spread = &q
	}
	var looked []byFree // back into the queue afterwards, the chosen one too
	defer func() {
		for _, e := range looked {
			heap.Push(p.spread, e)
		}
	}()
	for p.spread.Len() > 0 {
		e := heap.Pop(p.spread).(byFree)
		if e.free != p.freeOf(e.host.ID) {
			continue // stale: the host was pushed again with what it has now
		}
		looked = append(looked, e)
		if r, _ := p.unfit(inst, need, e.host); r == "" {
			return e.host
		}
	}
	return nil
}

// moved puts host back in spread's order after its free capacity changed.
func (p *Planner) moved(host string) {
	if p.spread == nil {
		return
	}
	if h := p.st.Hosts[host]; h != nil && h.Role == fsm.RoleBack && h.Status == fsm.HostReady {
		heap.Push(p.spread, byFree{h, p.freeOf(host)})
	}
}
