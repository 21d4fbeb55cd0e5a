package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

// The built binary: help and --version on stdout with exit 0; bad input one
// line on stderr with exit 2; a missing Docker Engine one line with exit 1.
func TestBinaryHelpAndErrors(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "potluck-back")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	tokenFile := filepath.Join(t.TempDir(), "missing.token")

	for _, tc := range []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout []string
		stderr string
	}{
		{name: "help", args: []string{"--help"}, stdout: flagLines("core", "join-token", "join-token-file", "name", "cpus", "memory", "disk", "data-dir",
			"mesh-port", "docker-host", "publish-ip", "heartbeat", "metrics", "raw-relay", "log-level", "log-format")},
		{name: "-h", args: []string{"-h"}, stdout: []string{"Usage: potluck-back"}},
		{name: "help word", args: []string{"help"}, stdout: []string{"Usage: potluck-back"}},
		{name: "version", args: []string{"--version"}, stdout: []string{"potluck-back ", ", commit ", ", go1."}},
		{name: "unknown flag", args: []string{"--bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{name: "bad size", args: []string{"--memory", "lots"}, code: 2, stderr: "flag -memory"},
		{name: "bad size from env", env: []string{"POTLUCK_MEMORY=lots"}, code: 2, stderr: `POTLUCK_MEMORY="lots" (the environment twin of --memory)`},
		{name: "bad duration from env", env: []string{"POTLUCK_HEARTBEAT=1d"}, code: 2, stderr: "want a duration"},
		{name: "stray argument", args: []string{"run"}, code: 2, stderr: "unexpected arguments"},
		{name: "missing token file", args: []string{"--join-token-file", tokenFile, "--docker-host", "unix:///nonexistent.sock"}, code: 1, stderr: "--join-token-file: open"},
		{name: "subnets too small", args: []string{"--subnet-bits", "30"}, code: 2, stderr: "--subnet-bits: network pool 198.18.0.0/15: subnets of /30 do not fit"},
		{name: "IPv6 network pool", args: []string{"--network-pool", "fd00::/48", "--docker-host", "unix:///nonexistent.sock"}, code: 2, stderr: "want an IPv4 prefix"},
		{name: "public publish address", args: []string{"--publish-ip", "0.0.0.0", "--docker-host", "unix:///nonexistent.sock"}, code: 1, stderr: "loopback"},
		{name: "no docker engine", args: []string{"--docker-host", "unix:///nonexistent.sock"}, code: 1, stderr: "docker engine unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append(cmd.Environ(), tc.env...)
			cmd.Dir = t.TempDir() // the default --data-dir lands here
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.code, code, "stdout=%q stderr=%q", stdout.String(), stderr.String())
			for _, w := range tc.stdout {
				require.Contains(t, stdout.String(), w)
			}
			if tc.code == 0 {
				require.Empty(t, stderr.String())
				return
			}
			require.Empty(t, stdout.String())
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			require.Len(t, lines, 1, "one line: %s", stderr.String())
			require.True(t, strings.HasPrefix(lines[0], "potluck-back: "), lines[0])
			require.Contains(t, lines[0], tc.stderr)
		})
	}
}

func flagLines(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, "--"+n+"  ["+cli.EnvName(n)+"]")
	}
	return out
}
