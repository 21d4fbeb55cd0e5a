// Package testlog gives end-to-end tests a logger whose lines are kept, the
// last few thousand, and shown only when the test fails: a failure in CI
// then comes with what every node logged before it, and a passing run
// prints nothing.
package testlog

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// DefaultKeep is how many of the last lines a failed test shows.
const DefaultKeep = 4000

// New returns a logger for t at Info level. Its last keep lines are logged
// through t when t fails; with verbose set they also go to standard error
// as they come (for watching a run).
func New(t testing.TB, keep int, verbose bool) *slog.Logger {
	r := &ring{keep: keep, verbose: verbose}
	t.Cleanup(func() {
		lines := r.close()
		if t.Failed() && len(lines) > 0 {
			t.Logf("the last %d log lines of the nodes:\n%s", len(lines), strings.Join(lines, "\n"))
		}
	})
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// ring keeps the last keep lines written to it. Nodes may still log after
// the test's cleanup; those lines are dropped.
type ring struct {
	keep    int
	verbose bool

	mu     sync.Mutex
	lines  []string
	next   int // where the next line goes once the ring is full
	closed bool
}

func (r *ring) Write(p []byte) (int, error) {
	if r.verbose {
		os.Stderr.Write(p)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.keep <= 0 {
		return len(p), nil
	}
	for line := range bytes.Lines(p) {
		s := strings.TrimSuffix(string(line), "\n")
		if len(r.lines) < r.keep {
			r.lines = append(r.lines, s)
			continue
		}
		r.lines[r.next] = s
		r.next = (r.next + 1) % r.keep
	}
	return len(p), nil
}

// close stops keeping lines and returns those kept, oldest first.
func (r *ring) close() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return append(r.lines[r.next:len(r.lines):len(r.lines)], r.lines[:r.next]...)
}
