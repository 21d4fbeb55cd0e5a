package procluster

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProcKillAndRestart(t *testing.T) {
	p := NewProc("sleeper", "/bin/sleep", t.TempDir()+"/sleeper.log", "30")
	require.NoError(t, p.Start())
	require.True(t, p.Running())
	require.NotZero(t, p.PID())
	require.Error(t, p.Start(), "already running")
	require.NoError(t, p.Kill(syscall.SIGKILL, 5*time.Second))
	require.False(t, p.Running())
	require.Zero(t, p.PID())
	require.NoError(t, p.Start(), "an identical restart")
	require.True(t, p.Running())
	require.NoError(t, p.Stop(5*time.Second))
	require.False(t, p.Running())
}
