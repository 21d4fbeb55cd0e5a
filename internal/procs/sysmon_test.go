package procs

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
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

// sysmonChild marks this test binary's run as KeepSysmonAwake's subject
// (TestMain): it calls it and prints the GODEBUG it ends up with.
const sysmonChild = "POTLUCK_PROCS_SYSMON_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(sysmonChild) == "1" {
		if err := KeepSysmonAwake(); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Printf("pid %d GODEBUG=%q entries=%d\n", os.Getpid(), os.Getenv("GODEBUG"), countGodebug(os.Environ()))
		os.Exit(0)
	}
	os.Exit(m.Run())
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
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), sysmonChild+"=1", "GODEBUG="+tc.godebug)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Equal(t, fmt.Sprintf("pid %d GODEBUG=%q entries=1\n", cmd.Process.Pid, tc.want), string(out))
		})
	}
}
