package dockertest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Tarball directories of test binaries that ended go when the next binary
// makes its own; those of running binaries, new ones and others stay.
func TestTarballDirRemovesThoseOfEndedBinaries(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	const prefix = "potluck-test-"
	old := time.Now().Add(-2 * staleAfter)
	tests := []struct {
		name     string
		running  bool // its binary still holds the lock
		lockTime time.Time
		noLock   bool // no lock file: not made by tarballDir, or being made
		removed  bool
	}{
		{name: "binary ended", lockTime: old, removed: true},
		{name: "binary runs", running: true, lockTime: old},
		{name: "just made, not locked yet", lockTime: time.Now()},
		{name: "no lock file", noLock: true},
	}
	dirs := make([]string, len(tests))
	for i, tt := range tests {
		dir, lock, err := tarballDir(prefix)
		require.NoError(t, err)
		dirs[i] = dir
		require.NoError(t, os.WriteFile(filepath.Join(dir, "image.tar"), []byte("tar"), 0o600))
		if tt.running {
			t.Cleanup(func() { lock.Close() })
		} else {
			require.NoError(t, lock.Close())
		}
		if tt.noLock {
			require.NoError(t, os.Remove(lock.Name()))
		} else {
			require.NoError(t, os.Chtimes(lock.Name(), tt.lockTime, tt.lockTime))
		}
	}

	dir, lock, err := tarballDir(prefix)
	require.NoError(t, err)
	t.Cleanup(func() { lock.Close() })
	require.DirExists(t, dir)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := os.Stat(dirs[i])
			if tt.removed {
				require.ErrorIs(t, err, os.ErrNotExist)
			} else {
				require.NoError(t, err)
			}
		})
	}
}
