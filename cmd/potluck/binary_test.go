package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
)

// TestBinary runs the built command as a user would: exit codes and stderr
// come from the real process.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "potluck")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, string(out))
	core := apitest.Start(t)

	tests := []struct {
		name   string
		env    []string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"ok", []string{"POTLUCK_ADDR=" + core.URL, "POTLUCK_TOKEN=" + apitest.Token}, []string{"status"}, 0, "health ok", ""},
		{"wrong token", []string{"POTLUCK_ADDR=" + core.URL, "POTLUCK_TOKEN=wrong"}, []string{"hosts", "ls"}, 1, "", "(HTTP 401)"},
		{"no token", []string{"POTLUCK_ADDR=" + core.URL, "HOME=" + t.TempDir()}, []string{"status"}, 2, "", "no token"},
		{"help", nil, []string{"--help"}, 0, "Usage: potluck", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, tc.env...)
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
			require.Equal(t, tc.code, code, stderr.String())
			require.Contains(t, stdout.String(), tc.stdout)
			if tc.code != 0 {
				require.Equal(t, 1, strings.Count(stderr.String(), "\n"), stderr.String())
				require.Contains(t, stderr.String(), tc.stderr)
			} else {
				require.Empty(t, stderr.String())
			}
		})
	}
}
