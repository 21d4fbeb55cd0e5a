package procluster

import (
	"context"
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

// Only a host id as the core makes them goes into an image reference that
// cleanup removes.
func TestHostIDPattern(t *testing.T) {
	for id, ok := range map[string]bool{
		"h-5d0cdc4cfb68": true,
		"h-":             false,
		"h-5D0CDC4CFB68": false,
		"h-5d0c/../x":    false,
		"*":              false,
		"":               false,
	} {
		require.Equal(t, ok, hostIDPattern.MatchString(id), id)
	}
}

func TestPollWhileRunningFailsAtOnceWhenANodeExits(t *testing.T) {
	dir := t.TempDir()
	sleeper := NewProc("sleeper", "/bin/sleep", dir+"/sleeper.log", "30")
	require.NoError(t, sleeper.Start())
	defer sleeper.Stop(5 * time.Second)
	polls := 0
	require.NoError(t, pollWhileRunning(t.Context(), 10*time.Second, 10*time.Millisecond, []*Proc{sleeper},
		func(context.Context) bool { polls++; return polls == 3 }), "ready while running")

	quitter := NewProc("quitter", "/bin/false", dir+"/quitter.log")
	require.NoError(t, quitter.Start())
	start := time.Now()
	err := pollWhileRunning(t.Context(), time.Minute, 10*time.Millisecond, []*Proc{sleeper, quitter},
		func(context.Context) bool { return false })
	require.ErrorContains(t, err, "quitter exited")
	require.ErrorContains(t, err, dir+"/quitter.log")
	require.Less(t, time.Since(start), 10*time.Second, "not the whole wait")
}
