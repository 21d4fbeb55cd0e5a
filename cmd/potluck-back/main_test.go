package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

// The built binary: --help lists every flag with its POTLUCK_* twin; a bad
// flag or a missing Docker Engine is one line and a non-zero exit.
func TestBinaryHelpAndErrors(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "potluck-back")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)

	help, err := exec.Command(bin, "--help").CombinedOutput()
	require.NoError(t, err, "%s", help)
	for _, f := range []string{"core", "join-token", "name", "cpus", "memory", "disk", "data-dir", "mesh-port",
		"docker-host", "publish-ip", "heartbeat", "metrics", "log-level", "log-format"} {
		require.Contains(t, string(help), "--"+f+"  ["+cli.EnvName(f)+"]")
	}

	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, nil, "flag provided but not defined: -bogus"},
		{"bad size", []string{"--memory", "lots"}, nil, "flag -memory"},
		{"bad size from env", nil, []string{"POTLUCK_MEMORY=lots"}, "POTLUCK_MEMORY"},
		{"public publish address", []string{"--publish-ip", "0.0.0.0", "--docker-host", "unix:///nonexistent.sock"}, nil, "loopback"},
		{"no docker engine", []string{"--docker-host", "unix:///nonexistent.sock"}, nil, "docker engine unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append(cmd.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			require.Error(t, err)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			require.Len(t, lines, 1, "one line: %s", out)
			require.Contains(t, lines[0], tc.want)
		})
	}
}
