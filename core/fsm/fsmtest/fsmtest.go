// Package fsmtest drives an fsm.FSM the way raft does, for tests in any
// package: commands go in as raft log entries at the next index, and
// snapshots go out through a raft.SnapshotSink and back in through Restore.
package fsmtest

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// TimeAt is the time a command without one is applied at: one second per
// index after 2026-01-01 UTC, so a test's state is the same on every run.
func TimeAt(index uint64) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(index) * time.Second)
}

// ApplyAt applies cmd to f as the raft log entry at index, stamped with now
// when it has no time (and without a testing.T, for fakes of a core node
// that serialise their own applies).
func ApplyAt(f *fsm.FSM, index uint64, now time.Time, cmd *fsm.Command) fsm.Result {
	if cmd.Time.IsZero() {
		cmd.Time = now
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		panic(err) // commands are plain data
	}
	res, ok := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(fsm.Result)
	if !ok {
		panic("FSM.Apply must return an fsm.Result")
	}
	return res
}

// Apply applies cmd as the log entry after f's current index, the way raft
// hands a committed entry to the FSM, and returns the FSM's Result. A command
// with a zero Time gets TimeAt(index); cmd itself is not modified.
func Apply(t testing.TB, f *fsm.FSM, cmd *fsm.Command) fsm.Result {
	t.Helper()
	index := f.State().Index + 1
	c := *cmd // ApplyAt stamps the copy
	return ApplyAt(f, index, TimeAt(index), &c)
}

// Sink is an in-memory raft.SnapshotSink.
type Sink struct {
	bytes.Buffer
	Closed, Cancelled bool
}

var _ raft.SnapshotSink = (*Sink)(nil)

// ID names the snapshot.
func (s *Sink) ID() string { return "fsmtest" }

// Cancel records that the snapshot was abandoned.
func (s *Sink) Cancel() error { s.Cancelled = true; return nil }

// Close records that the snapshot is complete.
func (s *Sink) Close() error { s.Closed = true; return nil }

// Persist snapshots f as raft would and returns the bytes written.
func Persist(t testing.TB, f *fsm.FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	sink := &Sink{}
	require.NoError(t, snap.Persist(sink))
	require.True(t, sink.Closed, "Persist must close the sink")
	return sink.Bytes()
}

// Restore returns a new FSM restored from snapshot bytes.
func Restore(t testing.TB, data []byte) *fsm.FSM {
	t.Helper()
	f := fsm.New()
	require.NoError(t, f.Restore(io.NopCloser(bytes.NewReader(data))))
	return f
}
