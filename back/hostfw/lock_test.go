//go:build unix

package hostfw

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLockFileTakesTurns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hostfw.lock")
	unlock, err := lockFile(context.Background(), path)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = lockFile(ctx, path)
	require.ErrorIs(t, err, context.DeadlineExceeded, "held by the first")

	unlock()
	unlock2, err := lockFile(context.Background(), path)
	require.NoError(t, err, "free once the first let go")
	unlock2()
}

// A Back that may not write /run locks in the temporary directory.
func TestLockFileFallsBackToTheTemporaryDirectory(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	unlock, err := lockFile(context.Background(), "/nonexistent/potluck-hostfw.lock")
	require.NoError(t, err)
	defer unlock()
	_, err = os.Stat(filepath.Join(os.TempDir(), "potluck-hostfw.lock"))
	require.NoError(t, err)
}
