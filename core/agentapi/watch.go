package agentapi

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"potluck/agentproto"
	"potluck/core/fsm"
)

// watch follows the replicated state once for all blocking queries of a
// handler: for each new state it works out which hosts the change may
// concern (changedHosts), wakes only their queries, and forgets only their
// cached desired states. Without it every apply woke every agent's query to
// recompute its desired state, which at thousands of hosts costs more than
// the applies themselves.
type watch struct {
	src   StateSource
	ctx   context.Context
	start sync.Once

	mu      sync.Mutex
	ix      *index                   // of the newest state followed
	recent  []*index                 // of the last states followed, newest last (requests still hold them)
	extra   *index                   // of a state a request needed that the follower did not index
	waiters map[string]chan struct{} // host id -> closed when its desired state may have changed
	changed chan struct{}            // closed when ix is replaced (atLeast waits on it)

	// The desired state of each host as last computed, valid for every
	// followed state from the host's last change on (see cachedDesired):
	// an agent that asks again gets it without a recomputation while
	// nothing of its own changed, whatever else the fleet did.
	desired map[string]*desiredEntry
	dirtyAt map[string]uint64 // host id -> index of the newest followed state that may have changed it
	allAt   uint64            // index of the newest followed state that may have changed every host
	keys    map[string]string // WireGuard key -> host id, as found (hostByKey checks it against the state)
}

// desiredEntry is a host's desired state computed from the state at index
// at, without its index.
type desiredEntry struct {
	at uint64
	d  agentproto.DesiredState // Index 0
	fp []byte                  // d as JSON, nil until asked (never changed once set)
}

func newWatch(ctx context.Context, src StateSource) *watch {
	return &watch{src: src, ctx: ctx, waiters: map[string]chan struct{}{}, changed: make(chan struct{}),
		desired: map[string]*desiredEntry{}, dirtyAt: map[string]uint64{}, keys: map[string]string{}}
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
		began := time.Now()
		w.step(next)
		w.rest(time.Since(began))
	}
}

// The follower's rest after a step: at least minRest, as long as the step
// took, at most maxRest.
const (
	minRest = 20 * time.Millisecond
	maxRest = 250 * time.Millisecond
)

// rest waits after a step, so that states published meanwhile are taken
// together in the next one. A step costs what the states between wrote
// (fsm.State.ChangedSince) plus the desired states of the hosts it wakes,
// and O(fleet) when the FSM cannot say (a restore, a follower too far
// behind); stepping through every state as fast as they came, before the
// FSM said, took up to a core while creating. Resting as long as the step
// took, and at least minRest, it steps at most 50 times a second and uses
// at most half a core; an agent learns of a change at most one rest later,
// 20 ms at 1,000 hosts, against a heartbeat every 5 s.
func (w *watch) rest(took time.Duration) {
	t := time.NewTimer(min(max(took, minRest), maxRest))
	defer t.Stop()
	select {
	case <-t.C:
	case <-w.ctx.Done():
	}
}

// step moves the follower from its newest state to next (a later one),
// wakes the queries of the hosts the change may concern and forgets their
// desired states.
func (w *watch) step(next *fsm.State) {
	w.mu.Lock()
	cur := w.ix
	w.mu.Unlock()
	nix := w.indexOf(next)
	c := changedHosts(cur, nix)
	if c.sameInstallations {
		nix.inheritFronts(cur)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ix = nix
	w.recent = append(w.recent, nix)
	if len(w.recent) > recentIndexes {
		w.recent = append(w.recent[:0:0], w.recent[len(w.recent)-recentIndexes:]...)
	}
	at := next.Index
	if c.all {
		for id, ch := range w.waiters {
			close(ch)
			delete(w.waiters, id)
		}
		w.allAt = at
		clear(w.desired)
		clear(w.dirtyAt)
	} else {
		for id := range c.dirty {
			if ch, ok := w.waiters[id]; ok {
				close(ch)
				delete(w.waiters, id)
			}
			w.dirtyAt[id] = at
			delete(w.desired, id)
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// desiredOf is host's desired state in ix's state: the cached one when
// nothing that concerns the host changed between the state it was
// computed from and ix's, else computed (and cached when ix's state is one
// the follower has reached, so the changes up to it are known).
func (w *watch) desiredOf(ix *index, host *fsm.Host) agentproto.DesiredState {
	e := w.cached(ix, host.ID)
	if e == nil {
		e = &desiredEntry{at: ix.st.Index, d: desired(ix, host)}
		e.d.Index = 0
		w.mu.Lock()
		if w.ix != nil && e.at <= w.ix.st.Index && e.at >= w.allAt && e.at >= w.dirtyAt[host.ID] {
			if o := w.desired[host.ID]; o == nil || o.at < e.at {
				w.desired[host.ID] = e
			}
		}
		w.mu.Unlock()
	}
	d := e.d
	d.Index = ix.st.Index
	return d
}

// cached is the cache entry of hostID valid in ix's state, or nil. An entry
// computed from state e is valid in state s when no followed change since
// the older of the two concerns the host, and the follower has reached
// both (the changes up to them are known).
func (w *watch) cached(ix *index, hostID string) *desiredEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.desired[hostID]
	if e == nil || w.ix == nil {
		return nil
	}
	s, newest := ix.st.Index, w.ix.st.Index
	if e.at > newest || s > newest || max(w.allAt, w.dirtyAt[hostID]) > min(e.at, s) {
		return nil
	}
	return e
}

// encoded is host's desired state in ix's state as JSON with index 0:
// its fingerprint (what a woken query compares) and, but for the index,
// the body of the answer, encoded once per host and change.
func (w *watch) encoded(ix *index, host *fsm.Host) []byte {
	if e := w.cached(ix, host.ID); e != nil {
		w.mu.Lock()
		data := e.fp
		w.mu.Unlock()
		if data != nil {
			return data
		}
	}
	d := w.desiredOf(ix, host)
	d.Index = 0
	data, _ := json.Marshal(d)
	if e := w.cached(ix, host.ID); e != nil {
		w.mu.Lock()
		e.fp = data
		w.mu.Unlock()
	}
	return data
}

// fingerprint identifies a host's desired state in ix's state apart from
// the index; nil when the host is not in it.
func (w *watch) fingerprint(ix *index, hostID string) []byte {
	h := ix.st.Hosts[hostID]
	if h == nil {
		return nil
	}
	return w.encoded(ix, h)
}

// hostIDOf is the host id last found for a WireGuard key.
func (w *watch) hostIDOf(key string) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.keys[key]
	return id, ok
}

// rememberKey records the host found for a key (a host's key never
// changes; a removed host's entry is checked against the state on use).
func (w *watch) rememberKey(key, hostID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys[key] = hostID
}

// ensure starts the follower on first use.
func (w *watch) ensure() {
	w.start.Do(func() {
		ix := newIndex(w.src.State())
		w.mu.Lock()
		w.ix = ix
		w.allAt = ix.st.Index // nothing is known of the changes before it
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

// indexOf returns the index of st, one per state that the follower or a
// request asks for (an index fills its lookups lazily: requests of one
// state share them).
func (w *watch) indexOf(st *fsm.State) *index {
	w.ensure()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ix := range append([]*index{w.ix, w.extra}, w.recent...) {
		if ix != nil && ix.st == st {
			return ix
		}
	}
	ix := newIndex(st)
	w.extra = ix
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
