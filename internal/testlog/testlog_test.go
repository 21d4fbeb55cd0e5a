package testlog

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRingKeepsTheLastLinesInOrder(t *testing.T) {
	tests := []struct {
		name  string
		keep  int
		write []string
		want  []string
	}{
		{"fewer than keep", 3, []string{"a\n", "b\n"}, []string{"a", "b"}},
		{"wraps around", 3, []string{"a\n", "b\n", "c\n", "d\n", "e\n"}, []string{"c", "d", "e"}},
		{"several lines in one write", 2, []string{"a\nb\nc\n"}, []string{"b", "c"}},
		{"keep nothing", 0, []string{"a\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &ring{keep: tt.keep}
			for _, w := range tt.write {
				n, err := r.Write([]byte(w))
				require.NoError(t, err)
				require.Equal(t, len(w), n)
			}
			got := r.close()
			if tt.want == nil {
				require.Empty(t, got)
			} else {
				require.Equal(t, tt.want, got)
			}
			_, err := r.Write([]byte("after close\n"))
			require.NoError(t, err)
			require.Equal(t, len(got), len(r.close()), "lines after close are dropped")
		})
	}
}

// recorder is a testing.TB whose failure and logs the test controls.
type recorder struct {
	testing.TB
	failed   bool
	logged   []string
	cleanups []func()
}

func (r *recorder) Failed() bool { return r.failed }
func (r *recorder) Logf(format string, args ...any) {
	r.logged = append(r.logged, fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

func TestNewShowsTheLinesOnlyWhenTheTestFails(t *testing.T) {
	for _, failed := range []bool{false, true} {
		r := &recorder{TB: t, failed: failed}
		log := New(r, 10, false)
		log.Info("container started", "instance", "i-1")
		for _, f := range r.cleanups {
			f()
		}
		if !failed {
			require.Empty(t, r.logged)
			continue
		}
		require.Len(t, r.logged, 1)
		require.Contains(t, r.logged[0], "container started")
		require.Contains(t, r.logged[0], "instance=i-1")
	}
}
