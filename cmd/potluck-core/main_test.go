package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/pki"
	"potluck/internal/cli"
)

func TestHelpDocumentsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		env, out, errb := cli.BufferEnv(nil)
		err := run(args, env)
		require.ErrorIs(t, err, flag.ErrHelp)
		require.Equal(t, 0, cli.Exit(env.Stderr, "potluck-core", err))
		require.Empty(t, errb.String(), "help goes to stdout")
		n := 0
		newFlags(&options{}).VisitAll(func(f *flag.Flag) {
			n++
			require.NotEmpty(t, f.Usage)
			if f.Name != "version" {
				require.Contains(t, out.String(), "--"+f.Name+"  ["+cli.EnvName(f.Name)+"]")
			}
		})
		require.Greater(t, n, 15)
	}
}

func TestEnvironmentSetsFlagsButFlagsWin(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		vars  map[string]string
		check func(t *testing.T, o options)
	}{
		{"defaults", nil, nil, func(t *testing.T, o options) {
			require.Equal(t, "core1", o.nodeID)
			require.Equal(t, "potluck-core-data", o.dataDir)
			require.True(t, o.mesh)
		}},
		{"environment", nil, map[string]string{"POTLUCK_DATA_DIR": "/from/env", "POTLUCK_HEARTBEAT_TTL": "45s", "POTLUCK_MESH": "false", "POTLUCK_OPERATOR_TOKEN_FILE": "/etc/t"},
			func(t *testing.T, o options) {
				require.Equal(t, "/from/env", o.dataDir)
				require.Equal(t, 45*time.Second, o.heartbeatTTL)
				require.False(t, o.mesh)
				require.Equal(t, "/etc/t", o.operatorTokenFile)
			}},
		{"flag wins", []string{"--id", "core2", "--mesh=true"}, map[string]string{"POTLUCK_ID": "core7", "POTLUCK_MESH": "false"},
			func(t *testing.T, o options) {
				require.Equal(t, "core2", o.nodeID)
				require.True(t, o.mesh)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o options
			env, _, _ := cli.BufferEnv(tc.vars)
			require.NoError(t, newFlags(&o).Parse(tc.args, env))
			tc.check(t, o)
		})
	}
}

// Bad input is a usage error (exit 2) that names what to fix, before the
// node starts anything.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, nil, "flag provided but not defined: -bogus"},
		{"stray argument", []string{"start"}, nil, "unexpected arguments"},
		{"bad variable", nil, map[string]string{"POTLUCK_MESH_PORT": "not-a-port"}, `POTLUCK_MESH_PORT="not-a-port" (the environment twin of --mesh-port)`},
		{"mesh port", []string{"--mesh-port", "70000"}, nil, "--mesh-port 70000"},
		{"agent port", []string{"--agent-port", "70000"}, nil, "--agent-port 70000"},
		{"probe port", []string{"--probe-port", "70000"}, nil, "--probe-port 70000"},
		{"log level", []string{"--log-level", "loud"}, nil, "log level"},
		{"no token", nil, nil, "an operator token is required"},
		{"peers and join", []string{"--operator-token", "0123456789abcdef", "--peers", "core1=127.0.0.1:1", "--join", "http://x"}, nil, "not both"},
		{"bad peers", []string{"--operator-token", "0123456789abcdef", "--peers", "nonsense"}, nil, "--peers"},
		{"several peers without a cluster CA", []string{"--operator-token", "0123456789abcdef", "--peers", "core1=127.0.0.1:1,core2=127.0.0.1:2"}, nil, "--cluster-ca is required"},
		{"join without a cluster CA", []string{"--operator-token", "0123456789abcdef", "--join", "http://127.0.0.1:1"}, nil, "--cluster-ca is required"},
		{"ca without init", []string{"ca"}, nil, "potluck-core ca init"},
		{"ca init without --out", []string{"ca", "init"}, nil, "--out is required"},
		{"ca issue-api without --host", []string{"ca", "issue-api", "--ca", "x", "--out", "y"}, nil, "--ca, --host and --out are required"},
		{"image limit", []string{"--operator-token", "0123456789abcdef", "--max-image-unpacked", "0"}, nil, "--max-image-unpacked and --body-timeout must be positive"},
		{"dns without a zone", []string{"--operator-token", "0123456789abcdef", "--dns-listen", ":53"}, nil, "--dns-listen needs --dns-zone"},
		{"dns zone without listen", []string{"--operator-token", "0123456789abcdef", "--dns-zone", "apps.example.org"}, nil, "need --dns-listen"},
		{"dns negative rate", []string{"--operator-token", "0123456789abcdef", "--dns-listen", ":53", "--dns-zone", "apps.example.org", "--dns-ns", "ns1.example.org", "--dns-rate", "-1"}, nil, "--dns-rate"},
		{"dns bad name server", []string{"--operator-token", "0123456789abcdef", "--dns-listen", ":53", "--dns-zone", "apps.example.org", "--dns-ns", "ns1.example.org=nope"}, nil, "--dns-ns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, out, _ := cli.BufferEnv(tc.vars)
			err := run(tc.args, env)
			require.ErrorContains(t, err, tc.want)
			var stderr bytes.Buffer
			require.Equal(t, 2, cli.Exit(&stderr, "potluck-core", err))
			require.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line: %s", stderr.String())
			require.Empty(t, out.String())
		})
	}
}

// The built binary stamps the Makefile's release string, the commit and the
// Go version into --version.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "potluck-core")
	build := exec.Command("go", "build", "-ldflags", "-X potluck/internal/version.release=v9.9.9-test", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--version", "--id", "x"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(cmd.Environ(), "POTLUCK_HEARTBEAT_TTL=bogus") // not even read
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), stderr.String())
		require.Empty(t, stderr.String())
		require.Regexp(t, `^potluck-core v9\.9\.9-test, commit \S+.*, go1\.\d+.* \w+/\w+\n$`, stdout.String())
	}
}

func TestCAInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	env, out, _ := cli.BufferEnv(nil)
	require.NoError(t, run([]string{"ca", "init", "--out", dir}, env))
	require.Contains(t, out.String(), "cluster CA written to")
	_, err := pki.Load(dir)
	require.NoError(t, err)
	require.ErrorContains(t, run([]string{"ca", "init", "--out", dir}, env), "already exists")
}

func TestCAIssueAPI(t *testing.T) {
	caDir, out := filepath.Join(t.TempDir(), "api-ca"), filepath.Join(t.TempDir(), "api")
	env, stdout, _ := cli.BufferEnv(nil)
	require.NoError(t, run([]string{"ca", "init", "--out", caDir, "--name", "api"}, env))
	require.NoError(t, run([]string{"ca", "issue-api", "--ca", caDir, "--host", "core1.example, 127.0.0.1", "--out", out}, env))
	require.Contains(t, stdout.String(), "API certificate for core1.example, 127.0.0.1 written to")
	cert, err := tls.LoadX509KeyPair(filepath.Join(out, "api.crt"), filepath.Join(out, "api.key"))
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	roots := x509.NewCertPool()
	caPEM, err := os.ReadFile(filepath.Join(out, "ca.crt"))
	require.NoError(t, err)
	require.True(t, roots.AppendCertsFromPEM(caPEM))
	for _, name := range []string{"core1.example", "127.0.0.1"} {
		_, err = leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots})
		require.NoError(t, err, name)
	}
	info, err := os.Stat(filepath.Join(out, "api.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}
