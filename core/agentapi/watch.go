package agentapi

import (
	"context"
	"sync"
	"time"

	"potluck/core/fsm"
)

// watch follows the replicated state once for all blocking queries of a
// handler: for each new state it builds the index and works out which
// hosts the change may concern (changedHosts), and wakes only their
// queries. Without it every apply woke every agent's query to recompute
// its desired state, which at thousands of hosts costs more than the
// applies themselves.
type watch struct {
	src   StateSource
	ctx   context.Context
	start sync.Once
	build sync.Mutex // one indexOf build at a time

	mu      sync.Mutex
	ix      *index                   // of the newest state followed
	recent  []*index                 // of the last states followed, newest last (requests still hold them)
	extra   *index                   // of a state a request needed that the follower did not index
	waiters map[string]chan struct{} // host id -> closed when its desired state may have changed
	changed chan struct{}            // closed when ix is replaced (atLeast waits on it)
}

func newWatch(ctx context.Context, src StateSource) *watch {
	return &watch{src: src, ctx: ctx, waiters: map[string]chan struct{}{}, changed: make(chan struct{})}
}

// recentIndexes is how many of the last followed states keep their index
// for requests that started on them.
const recentIndexes = 2

// run follows the state until the handler's context ends.
func (w *watch) run() {
	for w.ctx.Err() == nil {
		w.mu.Lock()
		cur := w.ix
		w.mu.Unlock()
		next := w.src.Wait(w.ctx, cur.st.Index)
		if next.Index == cur.st.Index {
			continue // ctx ended
		}
		w.step(next)
	}
}

// step moves the follower from its newest state to next (a later one) and
// wakes the queries of the hosts the change may concern.
func (w *watch) step(next *fsm.State) {
	w.mu.Lock()
	cur := w.ix
	w.mu.Unlock()
	nix := w.indexOf(next)
	dirty, all := changedHosts(cur, nix)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ix = nix
	w.recent = append(w.recent, nix)
	if len(w.recent) > recentIndexes {
		w.recent = append(w.recent[:0:0], w.recent[len(w.recent)-recentIndexes:]...)
	}
	if all {
		for id, ch := range w.waiters {
			close(ch)
			delete(w.waiters, id)
		}
	} else {
		for id := range dirty {
			if ch, ok := w.waiters[id]; ok {
				close(ch)
				delete(w.waiters, id)
			}
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// ensure starts the follower on first use.
func (w *watch) ensure() {
	w.start.Do(func() {
		ix := newIndex(w.src.State())
		w.mu.Lock()
		w.ix = ix
		w.mu.Unlock()
		go w.run()
	})
}

// subscribe returns the newest followed state's index and a channel closed
// when a later state may change hostID's desired state.
func (w *watch) subscribe(hostID string) (*index, <-chan struct{}) {
	w.ensure()
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.waiters[hostID]
	if !ok {
		ch = make(chan struct{})
		w.waiters[hostID] = ch
	}
	return w.ix, ch
}

// indexOf returns the index of st, built at most once per state that the
// follower or a request asks for.
func (w *watch) indexOf(st *fsm.State) *index {
	w.ensure()
	w.mu.Lock()
	for _, ix := range append([]*index{w.ix, w.extra}, w.recent...) {
		if ix != nil && ix.st == st {
			w.mu.Unlock()
			return ix
		}
	}
	w.mu.Unlock()
	// One build at a time: requests that need the same state wait for it
	// instead of each building a copy.
	w.build.Lock()
	defer w.build.Unlock()
	w.mu.Lock()
	if w.extra != nil && w.extra.st == st {
		w.mu.Unlock()
		return w.extra
	}
	w.mu.Unlock()
	ix := newIndex(st)
	w.mu.Lock()
	w.extra = ix
	w.mu.Unlock()
	return ix
}

// current returns the newest followed state's index.
func (w *watch) current() (*index, <-chan struct{}) {
	w.ensure()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ix, w.changed
}

// atLeast returns the index of the newest followed state once the
// follower has reached st (or a later state), so that requests share the
// follower's one index per state instead of building their own. After a
// second without the follower getting there it returns the follower's
// newest index, an older committed state: an agent that gets it asks again
// from there and is woken for what changed since. (Building an index per
// waiting request instead, when a starved follower fell behind at 50,000
// instances, took 1.6 GiB for the copies and slowed the follower further.)
func (w *watch) atLeast(st *fsm.State) *index {
	timeout := time.NewTimer(time.Second)
	defer timeout.Stop()
	for range 1 << 20 { // bounded; each round waits for the follower
		ix, changed := w.current()
		if ix.st.Index >= st.Index {
			return ix
		}
		select {
		case <-changed:
		case <-timeout.C:
			return ix
		}
	}
	ix, _ := w.current()
	return ix
}
