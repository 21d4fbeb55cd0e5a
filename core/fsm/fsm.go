package fsm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// Result is what Apply returns through raft's ApplyFuture.Response.
type Result struct {
	Index    uint64
	Ref      string
	Err      error
	Replayed bool // the request id had been applied before; nothing changed now
}

// FSM is the raft.FSM of the core. States are published copy-on-write: State()
// returns a snapshot that never changes afterwards.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	changed chan struct{} // closed and replaced on every apply
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM with an empty state.
func New() *FSM {
	return &FSM{state: NewState(), changed: make(chan struct{})}
}

// State returns the current state. Callers must not modify it.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state
}

// Lookup returns the stored outcome of a request id, if it was applied.
func (f *FSM) Lookup(requestID string) (RequestRecord, bool) {
	if requestID == "" {
		return RequestRecord{}, false
	}
	st := f.State()
	r, ok := st.Requests[requestID]
	return r, ok
}

// Wait blocks until the state index is above index or ctx ends, and returns
// the state at that moment (for blocking queries).
func (f *FSM) Wait(ctx context.Context, index uint64) *State {
	for range 1 << 20 { // bounded: each round waits for an apply or ctx
		f.mu.RLock()
		st, ch := f.state, f.changed
		f.mu.RUnlock()
		if st.Index > index {
			return st
		}
		select {
		case <-ctx.Done():
			return st
		case <-ch:
		}
	}
	return f.State()
}

// Apply decodes and applies one log entry. A command that fails validation
// leaves the state unchanged; its error is still recorded under its request id
// so that a retry gets the same answer.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies the log entries raft committed together (a leader's
// group commit) on one working copy and publishes the state once: each map
// is copied at most once per batch, not once per command. Each entry's
// outcome is what Apply would have returned for it alone.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	base := f.state
	work := base.fork()
	out := make([]any, len(logs))
	// The entries applied so far, to apply again on a fresh fork when one
	// fails halfway (its partial changes must vanish).
	var done []applied
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue // a batching FSM also sees membership changes: nothing to apply
		}
		var c Command
		if err := json.Unmarshal(l.Data, &c); err != nil {
			out[i] = Result{Index: l.Index, Err: fmt.Errorf("decode command: %w", err)}
			continue
		}
		res, ok := applyCommand(work, &c, l.Index)
		var failed error
		if !ok {
			work = base.fork()
			for _, d := range done {
				if d.failed != nil {
					recordFailure(work, d.c, d.index, d.failed)
				} else {
					applyCommand(work, d.c, d.index)
				}
			}
			failed = res.Err
			res = recordFailure(work, &c, l.Index, failed)
		}
		done = append(done, applied{&c, l.Index, failed})
		out[i] = res
	}
	f.publish(work.sealed())
	return out
}

type applied struct {
	c      *Command
	index  uint64
	failed error // the command failed: only its request is recorded
}

// applyCommand applies c at index on a working copy, recording its request.
// ok is false when c failed after changing the copy, which the caller must
// then discard (recordFailure on a fresh copy records the failure).
func applyCommand(work *State, c *Command, index uint64) (res Result, ok bool) {
	if rec, seen := work.Requests[c.RequestID]; seen && c.RequestID != "" {
		return Result{Index: rec.Index, Ref: rec.Ref, Err: recordErr(rec), Replayed: true}, true
	}
	ref, err := work.apply(c)
	if err != nil {
		return Result{Index: index, Err: err}, false
	}
	if needsReindex(c.Type) {
		work.rebuildUsage()
	}
	work.Index = index
	if c.RequestID != "" {
		work.recordRequest(RequestRecord{ID: c.RequestID, Index: index, Ref: ref})
	}
	return Result{Index: index, Ref: ref}, true
}

// recordFailure records a failed command on a copy it did not change. A
// tentative command's failure is not recorded: its request will be decided
// again.
func recordFailure(work *State, c *Command, index uint64, err error) Result {
	work.Index = index
	if c.RequestID != "" && !c.Tentative {
		work.recordRequest(RequestRecord{ID: c.RequestID, Index: index, Code: CodeOf(err), Error: err.Error()})
	}
	return Result{Index: index, Err: err}
}

// needsReindex: commands that can change what instances already placed
// reserve (an app version forgotten, a promoted release's resources).
func needsReindex(t CommandType) bool {
	return t == CmdPushAppVersion || t == CmdPromoteRelease
}

func recordErr(r RequestRecord) error {
	if r.Error == "" {
		return nil
	}
	return &Error{Code: r.Code, Message: r.Error}
}

func (f *FSM) publish(s *State) {
	f.state = s
	close(f.changed)
	f.changed = make(chan struct{})
}

// Snapshot captures the current state; Persist may run concurrently with
// later Applies because published states are immutable.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{state: f.State()}, nil
}

// Restore replaces the state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := NewState()
	dec := json.NewDecoder(rc)
	if err := dec.Decode(st); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	fillNil(st)
	st.usage = buildUsage(st)
	st.changes = &changeNode{to: st.Index, restored: true}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publish(st)
	return nil
}

func fillNil(st *State) {
	e := NewState()
	if st.Hosts == nil {
		st.Hosts = e.Hosts
	}
	if st.CoreNodes == nil {
		st.CoreNodes = e.CoreNodes
	}
	if st.Apps == nil {
		st.Apps = e.Apps
	}
	if st.Installations == nil {
		st.Installations = e.Installations
	}
	if st.Instances == nil {
		st.Instances = e.Instances
	}
	if st.Tokens == nil {
		st.Tokens = e.Tokens
	}
	if st.Requests == nil {
		st.Requests = e.Requests
	}
}

type snapshot struct{ state *State }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.state); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("write snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
