package procs

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/mainexec"
)

func TestWithSysmonAwake(t *testing.T) {
	for _, tc := range []struct {
		name, godebug, want string
		change              bool
	}{
		{name: "unset", godebug: "", want: sysmonAwake, change: true},
		{name: "other settings are kept", godebug: "http2debug=1,gctrace=0", want: "http2debug=1,gctrace=0," + sysmonAwake, change: true},
		{name: "the operator's schedtrace wins", godebug: "gctrace=1,schedtrace=0", want: "gctrace=1,schedtrace=0"},
		{name: "a longer name is not schedtrace", godebug: "xschedtrace=1", want: "xschedtrace=1," + sysmonAwake, change: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, change := withSysmonAwake(tc.godebug)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.change, change)
		})
	}
}

// TestMain makes this test binary, started by mainexec.Command, a process
// that calls KeepSysmonAwake and prints the GODEBUG it ends up with.
func TestMain(m *testing.M) {
	mainexec.Main(m, func() {
		if err := KeepSysmonAwake(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("pid %d GODEBUG=%q entries=%d\n", os.Getpid(), os.Getenv("GODEBUG"), countGodebug(os.Environ()))
	})
}

func countGodebug(env []string) int {
	n := 0
	for _, kv := range env {
		if strings.HasPrefix(kv, "GODEBUG=") {
			n++
		}
	}
	return n
}

// TestKeepSysmonAwakeExecutesItselfOnce runs this test binary as a process
// that calls KeepSysmonAwake: it comes back (same PID) with the setting
// added to what GODEBUG held, once, and leaves an operator's schedtrace as
// it is.
func TestKeepSysmonAwakeExecutesItselfOnce(t *testing.T) {
	for _, tc := range []struct{ godebug, want string }{
		{godebug: "", want: sysmonAwake},
		{godebug: "gctrace=0", want: "gctrace=0," + sysmonAwake},
		{godebug: "schedtrace=0", want: "schedtrace=0"},
	} {
		t.Run(tc.godebug, func(t *testing.T) {
			cmd := mainexec.Command()
			cmd.Env = append(cmd.Env, "GODEBUG="+tc.godebug)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Equal(t, fmt.Sprintf("pid %d GODEBUG=%q entries=1\n", cmd.Process.Pid, tc.want), string(out))
		})
	}
}
