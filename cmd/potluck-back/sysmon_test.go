package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/mainexec"
)

func TestMain(m *testing.M) { mainexec.Main(m, main) }

// TestMainKeepsSysmonAwake: potluck-back executes itself again to keep
// sysmon awake (procs.KeepSysmonAwake, docs/agents.md), once, unless its
// environment sets GODEBUG's schedtrace. GODEBUG's inittrace makes every
// start of the runtime print a line for its first package, so a
// re-execution shows as two.
func TestMainKeepsSysmonAwake(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		starts  int
	}{
		{godebug: "inittrace=1", starts: 2},
		{godebug: "inittrace=1,schedtrace=0", starts: 1},
	} {
		t.Run(tc.godebug, func(t *testing.T) {
			cmd := mainexec.Command("--docker-host", "unix:///nonexistent.sock")
			cmd.Env = append(cmd.Env, "GODEBUG="+tc.godebug)
			cmd.Dir = t.TempDir() // the default --data-dir lands here
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "no Docker Engine: exit 1")
			require.Equal(t, 1, exit.ExitCode(), stderr.String())
			require.Equal(t, tc.starts, strings.Count(stderr.String(), "init internal/bytealg @"), stderr.String())
			require.Contains(t, stderr.String(), "potluck-back: docker engine unreachable")
		})
	}
}
