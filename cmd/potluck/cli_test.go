package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/apiclient/apitest"
	"potluck/internal/cli"
)

type result struct {
	code           int
	stdout, stderr string
}

// potluck runs the CLI in-process with the given environment variables.
func potluck(t *testing.T, vars map[string]string, tty bool, args ...string) result {
	t.Helper()
	e, out, errb := cli.BufferEnv(vars)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, env{Env: e, stderrIsTTY: tty})
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// oneLine checks the CLI's error contract: exactly one line on stderr.
func oneLine(t *testing.T, r result) {
	t.Helper()
	require.NotZero(t, r.code, "stdout=%q", r.stdout)
	require.Equal(t, 1, strings.Count(r.stderr, "\n"), "stderr=%q", r.stderr)
	require.True(t, strings.HasPrefix(r.stderr, "potluck: "), r.stderr)
}

func TestCLIAgainstRealCore(t *testing.T) {
	core := apitest.Start(t)
	core.RegisterHost(t, "f1", "front", 1, 512)
	core.RegisterHost(t, "b1", "back", 2, 1024)
	core.RegisterHost(t, "b2", "back", 2, 1024)
	core.RegisterHost(t, "b3", "back", 2, 1024)

	dir := t.TempDir()
	tarball := filepath.Join(dir, "hello.tar")
	require.NoError(t, os.WriteFile(tarball, apitest.DockerSaveTar(t, "hello:1", 200_000), 0o644))
	notTar := filepath.Join(dir, "junk.tar")
	require.NoError(t, os.WriteFile(notTar, []byte("this is not a tarball"), 0o644))
	configFile := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(configFile, []byte("# test\naddr = "+core.URL+"\ntoken = "+apitest.Token+"\n"), 0o600))
	badConfig := filepath.Join(dir, "bad-config")
	require.NoError(t, os.WriteFile(badConfig, []byte("colour = blue\n"), 0o600))

	envVars := map[string]string{"POTLUCK_ADDR": core.URL, "POTLUCK_TOKEN": apitest.Token}
	noVars := map[string]string{}
	flags := []string{"--addr", core.URL, "--token", apitest.Token}

	// The steps run in order and build on each other (push, deploy, scale, rm).
	steps := []struct {
		name    string
		vars    map[string]string
		tty     bool
		args    []string
		code    int
		stdout  []string // substrings expected on stdout
		stderr  string   // substring of the one-line error (code != 0)
		jsonLen int      // for --json lists: expected number of items (-1: not a list)
	}{
		{name: "help", vars: noVars, args: []string{"--help"}, stdout: []string{"apps push FILE", "installations scale NAME", "containers ls"}, jsonLen: -1},
		{name: "command help", vars: noVars, args: []string{"deploy", "--help"}, stdout: []string{"-memory", "-env", "-domain"}, jsonLen: -1},
		{name: "status via env", vars: envVars, args: []string{"status"}, stdout: []string{"node core1 (Leader)", "health ok", "NODE", "leader"}, jsonLen: -1},
		{name: "status via flags", vars: noVars, args: append([]string{"status"}, flags...), stdout: []string{"health ok"}, jsonLen: -1},
		{name: "status via config file", vars: noVars, args: []string{"status", "--config", configFile}, stdout: []string{"health ok"}, jsonLen: -1},
		{name: "status via POTLUCK_CONFIG", vars: map[string]string{"POTLUCK_CONFIG": configFile}, args: []string{"status"}, stdout: []string{"health ok"}, jsonLen: -1},
		{name: "status via default config", vars: map[string]string{"HOME": "/nonexistent", "XDG_CONFIG_HOME": filepath.Dir(filepath.Dir(mustLink(t, configFile)))}, args: []string{"status"}, stdout: []string{"health ok"}, jsonLen: -1},
		{name: "hosts ls", vars: envVars, args: []string{"hosts", "ls"}, stdout: []string{"NAME", "b1", "back", "ready", "2/2", "1024MiB/1024MiB"}, jsonLen: -1},
		{name: "hosts ls json", vars: envVars, args: []string{"hosts", "ls", "--json"}, jsonLen: 4},
		{name: "hosts show", vars: envVars, args: []string{"hosts", "show", "b2"}, stdout: []string{"role", "back", "tunnel address", "100.64.", "region", "capacity (declared)", "measured"}, jsonLen: -1},
		{name: "tokens create", vars: envVars, args: []string{"tokens", "create", "--description", "alice laptop", "--ttl", "24h"}, stdout: []string{"join token", "shown only now"}, jsonLen: -1},
		{name: "tokens create app-owner", vars: envVars, args: []string{"tokens", "create", "--scope", "app-owner", "--apps", "hello,blog", "--description", "team hello"},
			stdout: []string{"app-owner token for apps hello,blog", "shown only now"}, jsonLen: -1},
		{name: "tokens create read-only", vars: envVars, args: []string{"tokens", "create", "--scope", "read-only"}, stdout: []string{"read-only token", "shown only now"}, jsonLen: -1},
		{name: "tokens ls", vars: envVars, args: []string{"tokens", "ls"}, stdout: []string{"alice laptop", "REVOKED", "SCOPE", "app-owner", "apps hello,blog", "read-only", "join"}, jsonLen: -1},
		{name: "tokens ls json", vars: envVars, args: []string{"tokens", "ls", "--json"}, jsonLen: 7}, // 4 hosts' join tokens, alice's, two scoped
		{name: "apps push", vars: envVars, args: []string{"apps", "push", tarball, "--name", "hello", "--port", "8080"}, stdout: []string{"pushed hello: image hello:1", "sha256:"}, jsonLen: -1},
		{name: "apps ls", vars: envVars, args: []string{"apps", "ls"}, stdout: []string{"hello", "hello:1", "8080", "KiB"}, jsonLen: -1},
		{name: "apps ls json", vars: envVars, args: []string{"apps", "ls", "--json"}, jsonLen: 1},
		{name: "deploy", vars: envVars, args: []string{"deploy", "--app", "hello", "--fronts", "1", "--backs", "2", "--domain", "hello.example.com", "--cpus", "0.5", "--memory", "512MiB", "--env", "GREETING=hi", "--env", "MODE=test", "--detach"},
			stdout: []string{"installation hello created", "http://hello.example.com/", "pending"}, jsonLen: -1},
		{name: "installations ls", vars: envVars, args: []string{"installations", "ls"}, stdout: []string{"hello.example.com", "0/2", "0.5 cpu, 512MiB"}, jsonLen: -1},
		{name: "installations show", vars: envVars, args: []string{"installations", "show", "hello"}, stdout: []string{"GREETING=hi MODE=test", "f1 (", "backs 2"}, jsonLen: -1},
		{name: "installations scale", vars: envVars, args: []string{"installations", "scale", "hello", "--backs", "3"}, stdout: []string{"backs 3"}, jsonLen: -1},
		{name: "containers ls json", vars: envVars, args: []string{"containers", "ls", "--json"}, jsonLen: 3},
		{name: "containers ls", vars: envVars, args: []string{"containers", "ls"}, stdout: []string{"INSTALLATION", "hello", "pending"}, jsonLen: -1},
		{name: "scale by scoped variables, the flag wins", vars: with(envVars, map[string]string{"POTLUCK_INSTALLATIONS_SCALE_BACKS": "1", "POTLUCK_INSTALLATIONS_SCALE_FRONTS": "1"}),
			args: []string{"installations", "scale", "hello", "--backs", "3"}, stdout: []string{"backs 3", "fronts 1"}, jsonLen: -1},
		{name: "an agent's variables do not leak into commands", vars: with(envVars, map[string]string{"POTLUCK_NAME": "Bad Name!", "POTLUCK_MEMORY": "lots", "POTLUCK_FRONTS": "x"}),
			args: []string{"installations", "show", "hello"}, stdout: []string{"backs 3"}, jsonLen: -1},
		{name: "json by variable", vars: with(envVars, map[string]string{"POTLUCK_JSON": "true"}), args: []string{"apps", "ls"}, jsonLen: 1},
		{name: "app in use", vars: envVars, args: []string{"apps", "rm", "hello"}, code: 1, stderr: "(HTTP 409)", jsonLen: -1},
		{name: "a release keeps the domain", vars: envVars, args: []string{"deploy", "--name", "hello", "--domain", "other.example.com"}, code: 2, stderr: "a release cannot change the domain", jsonLen: -1},
		{name: "a release keeps the counts", vars: envVars, args: []string{"deploy", "--name", "hello", "--backs", "1"}, code: 2, stderr: "potluck installations scale hello", jsonLen: -1},
		{name: "deploy a release", vars: envVars, args: []string{"deploy", "--name", "hello", "--env", "GREETING=v2", "--health-path", "/healthz", "--detach"},
			stdout: []string{"installation hello: release 2 (hello v1) rolling out beside release 1"}, jsonLen: -1},
		{name: "releases", vars: envVars, args: []string{"releases", "hello"}, stdout: []string{"v2", "deploying", "GREETING=v2", "v1", "live", "GREETING=hi MODE=test"}, jsonLen: -1},
		{name: "one rollout at a time", vars: envVars, args: []string{"rollback", "hello"}, code: 1, stderr: "release 2 of \"hello\" is still rolling out", jsonLen: -1},
		{name: "rollback version", vars: envVars, args: []string{"rollback", "hello", "latest"}, code: 2, stderr: "VERSION is a release number", jsonLen: -1},
		{name: "rollback too many arguments", vars: envVars, args: []string{"rollback", "hello", "1", "2"}, code: 2, stderr: "usage: potluck rollback NAME [VERSION]", jsonLen: -1},
		{name: "no capacity", vars: envVars, args: []string{"deploy", "--app", "hello", "--name", "big", "--backs", "3", "--domain", "big.example.com", "--memory", "1GiB"}, code: 1, stderr: "not enough capacity", jsonLen: -1},
		{name: "installations rm", vars: envVars, args: []string{"installations", "rm", "hello"}, stdout: []string{"installation hello deleted"}, jsonLen: -1},
		{name: "containers empty", vars: envVars, args: []string{"containers", "ls", "--json"}, jsonLen: 0},
		{name: "hosts rm", vars: envVars, args: []string{"hosts", "rm", "b3"}, stdout: []string{"host b3", "decommissioned"}, jsonLen: -1},
		{name: "apps rm", vars: envVars, args: []string{"apps", "rm", "hello"}, stdout: []string{"app hello deleted"}, jsonLen: -1},
		{name: "apps ls empty", vars: envVars, args: []string{"apps", "ls", "--json"}, jsonLen: 0},
		{name: "tokens rotate-operator", vars: envVars, args: []string{"tokens", "rotate-operator", "--grace", "2h"}, stdout: []string{"operator token rotated; the old one works until", "shown only now"}, jsonLen: -1},
		{name: "the old operator token still works", vars: envVars, args: []string{"status"}, stdout: []string{"health ok"}, jsonLen: -1},

		// Bad input: one line on stderr, non-zero exit.
		{name: "unknown app", vars: envVars, args: []string{"deploy", "--app", "nope", "--domain", "x.example.com"}, code: 1, stderr: "(HTTP 400)", jsonLen: -1},
		{name: "unknown installation", vars: envVars, args: []string{"installations", "show", "nope"}, code: 1, stderr: "(HTTP 404)", jsonLen: -1},
		{name: "unknown host", vars: envVars, args: []string{"hosts", "rm", "nope"}, code: 1, stderr: "(HTTP 404)", jsonLen: -1},
		{name: "bad size", vars: envVars, args: []string{"deploy", "--app", "hello", "--domain", "x.example.com", "--memory", "lots"}, code: 2, stderr: `bad size "lots"`, jsonLen: -1},
		{name: "bad unit", vars: envVars, args: []string{"deploy", "--app", "hello", "--domain", "x.example.com", "--memory", "5 parsecs"}, code: 2, stderr: "unknown unit", jsonLen: -1},
		{name: "bad env", vars: envVars, args: []string{"deploy", "--app", "hello", "--domain", "x.example.com", "--env", "NOEQUALS"}, code: 2, stderr: "KEY=VALUE", jsonLen: -1},
		{name: "bad requirement", vars: envVars, args: []string{"deploy", "--app", "hello", "--domain", "x.example.com", "--requires", "amd64"}, code: 2, stderr: "--requires \"amd64\": want FEATURE=VALUE", jsonLen: -1},
		{name: "bad spread", vars: envVars, args: []string{"deploy", "--app", "hello", "--domain", "x.example.com", "--spread", "lender=0"}, code: 2, stderr: "--spread \"lender=0\"", jsonLen: -1},
		{name: "unknown placement policy", vars: envVars, args: []string{"cluster", "placement", "first-fit"}, code: 2, stderr: "the policies are spread and pack", jsonLen: -1},
		{name: "set placement policy", vars: envVars, args: []string{"cluster", "placement", "pack"}, stdout: []string{"placement policy: pack"}, jsonLen: -1},
		{name: "show placement policy", vars: envVars, args: []string{"cluster", "placement"}, stdout: []string{"placement policy: pack"}, jsonLen: -1},
		{name: "missing token", vars: map[string]string{"POTLUCK_ADDR": core.URL}, args: []string{"status"}, code: 2, stderr: "no token", jsonLen: -1},
		{name: "wrong token", vars: map[string]string{"POTLUCK_ADDR": core.URL, "POTLUCK_TOKEN": "wrong-token"}, args: []string{"hosts", "ls"}, code: 1, stderr: "(HTTP 401)", jsonLen: -1},
		{name: "not a tarball", vars: envVars, args: []string{"apps", "push", notTar, "--name", "junk"}, code: 1, stderr: "(HTTP 400)", jsonLen: -1},
		{name: "missing file", vars: envVars, args: []string{"apps", "push", filepath.Join(dir, "none.tar"), "--name", "x"}, code: 1, stderr: "no such file", jsonLen: -1},
		{name: "push without name", vars: envVars, args: []string{"apps", "push", tarball}, code: 2, stderr: "needs --name", jsonLen: -1},
		{name: "bad app name", vars: envVars, args: []string{"apps", "push", tarball, "--name", "Bad Name!"}, code: 1, stderr: "(HTTP 400)", jsonLen: -1},
		{name: "flags but no command", vars: envVars, args: []string{"--json"}, code: 2, stderr: "no command given", jsonLen: -1},
		{name: "unknown command", vars: envVars, args: []string{"frobnicate"}, code: 2, stderr: "unknown command", jsonLen: -1},
		{name: "unknown subcommand", vars: envVars, args: []string{"apps", "fly"}, code: 2, stderr: "push, ls, show, rm", jsonLen: -1},
		{name: "unknown flag", vars: envVars, args: []string{"apps", "ls", "--colour"}, code: 2, stderr: "flag provided but not defined", jsonLen: -1},
		{name: "bad scoped variable", vars: with(envVars, map[string]string{"POTLUCK_DEPLOY_CPUS": "many"}), args: []string{"deploy", "--app", "hello", "--domain", "x.example.com"},
			code: 2, stderr: `deploy: POTLUCK_DEPLOY_CPUS="many" (the environment twin of --cpus)`, jsonLen: -1},
		{name: "bad global variable", vars: with(envVars, map[string]string{"POTLUCK_TIMEOUT": "1d"}), args: []string{"status"},
			code: 2, stderr: `POTLUCK_TIMEOUT="1d" (the environment twin of --timeout): parse error (want a duration`, jsonLen: -1},
		{name: "missing argument", vars: envVars, args: []string{"hosts", "show"}, code: 2, stderr: "usage: potluck hosts show HOST", jsonLen: -1},
		{name: "bad token scope", vars: envVars, args: []string{"tokens", "create", "--scope", "admin"}, code: 2, stderr: "--scope must be join, app-owner or read-only", jsonLen: -1},
		{name: "app-owner token of nothing", vars: envVars, args: []string{"tokens", "create", "--scope", "app-owner"}, code: 2, stderr: "--scope app-owner needs --apps", jsonLen: -1},
		{name: "join token with apps", vars: envVars, args: []string{"tokens", "create", "--apps", "hello"}, code: 2, stderr: "--apps and --installations go with --scope app-owner", jsonLen: -1},
		{name: "bad description", vars: envVars, args: []string{"tokens", "create", "--description", "evil\x1b[2J"}, code: 1, stderr: "control characters", jsonLen: -1},
		{name: "missing CA file", vars: envVars, args: []string{"status", "--ca", filepath.Join(dir, "none.pem")}, code: 2, stderr: "--ca: CA file", jsonLen: -1},
		{name: "scale without counts", vars: envVars, args: []string{"installations", "scale", "x"}, code: 2, stderr: "--fronts and/or --backs", jsonLen: -1},
		{name: "unreachable core", vars: map[string]string{"POTLUCK_ADDR": "http://127.0.0.1:1", "POTLUCK_TOKEN": "x"}, args: []string{"status"}, code: 1, stderr: "connection refused", jsonLen: -1},
		{name: "bad config file", vars: noVars, args: []string{"status", "--config", badConfig}, code: 1, stderr: "line 1", jsonLen: -1},
		{name: "missing config file", vars: noVars, args: []string{"status", "--config", filepath.Join(dir, "nope")}, code: 1, stderr: "no such file", jsonLen: -1},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := potluck(t, s.vars, s.tty, s.args...)
			if s.code != 0 {
				oneLine(t, r)
				require.Equal(t, s.code, r.code, r.stderr)
				require.Contains(t, r.stderr, s.stderr)
				require.NotContains(t, r.stderr, apitest.Token, "token leaked")
				return
			}
			require.Equal(t, 0, r.code, "stderr=%q", r.stderr)
			require.Empty(t, r.stderr)
			for _, want := range s.stdout {
				require.Contains(t, r.stdout, want)
			}
			if s.jsonLen >= 0 {
				var items []json.RawMessage
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &items), r.stdout)
				require.Len(t, items, s.jsonLen)
			}
		})
	}
}

// with is base plus more.
func with(base, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// TestHelpAndVersion: help and --version go to stdout with exit 0, need no
// core and no token, and list every flag with its environment twin.
func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		stdout []string
	}{
		{"no arguments", nil, []string{"Usage: potluck COMMAND", "POTLUCK_* environment twin"}},
		{"help word", []string{"help"}, []string{"Usage: potluck COMMAND"}},
		{"-h", []string{"-h"}, []string{"Usage: potluck COMMAND"}},
		{"group help", []string{"apps", "--help"}, []string{"apps push FILE", "apps rm APP"}},
		{"command help", []string{"deploy", "-h"}, []string{"Usage: potluck deploy [flags]", "--addr  [POTLUCK_ADDR]", "--token  [POTLUCK_TOKEN]",
			"--json  [POTLUCK_JSON]", "--memory  [POTLUCK_DEPLOY_MEMORY]", "--env  [POTLUCK_DEPLOY_ENV]"}},
		{"two-word command help", []string{"installations", "scale", "--help"}, []string{"--backs  [POTLUCK_INSTALLATIONS_SCALE_BACKS]"}},
		{"version", []string{"--version"}, []string{"potluck ", ", commit ", ", go1."}},
		{"version after a command", []string{"status", "--version"}, []string{"potluck ", ", go1."}},
		{"version before a command", []string{"--version", "hosts", "ls"}, []string{"potluck ", ", go1."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := potluck(t, map[string]string{"POTLUCK_TIMEOUT": "bogus"}, false, tc.args...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Empty(t, r.stderr)
			for _, w := range tc.stdout {
				require.Contains(t, r.stdout, w)
			}
		})
	}
}

// mustLink puts the config file where the default lookup finds it
// ($XDG_CONFIG_HOME/potluck/config) and returns that path.
func mustLink(t *testing.T, configFile string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xdg", "potluck", "config")
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
	data, err := os.ReadFile(configFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// TestPushProgress checks the progress bar on a terminal and the plain
// summary otherwise, and that the upload reached the core intact.
func TestPushProgress(t *testing.T) {
	core := apitest.Start(t)
	tarball := filepath.Join(t.TempDir(), "big.tar")
	require.NoError(t, os.WriteFile(tarball, apitest.DockerSaveTar(t, "big:1", 3<<20), 0o644))
	vars := map[string]string{"POTLUCK_ADDR": core.URL, "POTLUCK_TOKEN": apitest.Token}

	tests := []struct {
		name     string
		tty      bool
		wantBar  bool
		appName  string
		extraArg string
	}{
		{name: "terminal shows a bar", tty: true, wantBar: true, appName: "big-tty"},
		{name: "pipe shows a summary only", tty: false, wantBar: false, appName: "big-pipe"},
		{name: "json never draws", tty: true, wantBar: false, appName: "big-json", extraArg: "--json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"apps", "push", tarball, "--name", tc.appName}
			if tc.extraArg != "" {
				args = append(args, tc.extraArg)
			}
			r := potluck(t, vars, tc.tty, args...)
			require.Equal(t, 0, r.code, r.stderr)
			if tc.wantBar {
				require.Contains(t, r.stderr, "\rpushing "+tc.appName+" [")
				require.Contains(t, r.stderr, "100%")
			} else {
				require.Empty(t, r.stderr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			app, err := core.Client.App(ctx, tc.appName)
			require.NoError(t, err)
			fi, err := os.Stat(tarball)
			require.NoError(t, err)
			require.Equal(t, fi.Size(), app.Size)
		})
	}
}

func TestParseSizeMiB(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"512MiB", 512, false}, {"512", 512, false}, {"1GiB", 1024, false}, {"1.5G", 1536, false},
		{"256M", 256, false}, {"2048KiB", 2, false}, {"1 GiB", 1024, false},
		{"", 0, true}, {"lots", 0, true}, {"-5MiB", 0, true}, {"0", 0, true}, {"5 parsecs", 0, true}, {"1.2.3M", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSizeMiB(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestCLIOnFollower: any core node answers; writes (the streamed upload
// too) are forwarded to the leader.
func TestCLIOnFollower(t *testing.T) {
	cores := apitest.StartCluster(t, 3)
	f := apitest.Follower(t, cores)
	f.RegisterHost(t, "f1", "front", 1, 512)
	f.RegisterHost(t, "b1", "back", 2, 1024)
	tarball := filepath.Join(t.TempDir(), "hello.tar")
	require.NoError(t, os.WriteFile(tarball, apitest.DockerSaveTar(t, "hello:1", 300_000), 0o644))
	vars := map[string]string{"POTLUCK_ADDR": f.URL, "POTLUCK_TOKEN": apitest.Token}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"apps", "push", tarball, "--name", "hello", "--port", "8080"}, "pushed hello"},
		{[]string{"deploy", "--app", "hello", "--domain", "hello.example.com", "--memory", "0.5GiB", "--detach"}, "installation hello created"},
		{[]string{"--json", "installations", "show", "hello"}, `"memory_mb": 512`},
		{[]string{"--addr", f.URL, "status"}, "Follower"},
	}
	for _, s := range steps {
		r := potluck(t, vars, false, s.args...)
		require.Equal(t, 0, r.code, "%v: %s", s.args, r.stderr)
		require.Contains(t, r.stdout, s.want)
	}
}

// TestWatchInstallation: show --watch prints the installation again when it
// changes and ends cleanly at --timeout.
func TestWatchInstallation(t *testing.T) {
	core := apitest.Start(t)
	core.RegisterHost(t, "f1", "front", 1, 512)
	core.RegisterHost(t, "b1", "back", 2, 1024)
	core.RegisterHost(t, "b2", "back", 2, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := apitest.DockerSaveTar(t, "hello:1", 1000)
	_, err := core.Client.UploadApp(ctx, "hello", 8080, bytes.NewReader(data), int64(len(data)), nil)
	require.NoError(t, err)
	_, err = core.Client.CreateInstallation(ctx, apiclient.CreateInstallationRequest{Name: "hello", App: "hello", Fronts: 1, Backs: 2, Domain: "hello.example.com"})
	require.NoError(t, err)

	vars := map[string]string{"POTLUCK_ADDR": core.URL, "POTLUCK_TOKEN": apitest.Token}
	done := make(chan result, 1)
	go func() {
		done <- potluck(t, vars, false, "installations", "show", "hello", "--watch", "--timeout", "3s")
	}()
	time.Sleep(500 * time.Millisecond)
	one := 1
	_, err = core.Client.ScaleInstallation(ctx, "hello", nil, &one)
	require.NoError(t, err)
	r := <-done
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "backs 2")
	require.Contains(t, r.stdout, "--- ")
	require.Contains(t, r.stdout, "backs 1")
}

func TestLeadingFlagsLast(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"--json", "hosts", "ls"}, []string{"hosts", "ls", "--json"}},
		{[]string{"--addr", "http://c", "--json", "status"}, []string{"status", "--addr", "http://c", "--json"}},
		{[]string{"--timeout=3s", "apps", "push", "f.tar"}, []string{"apps", "push", "--timeout=3s", "f.tar"}},
		{[]string{"--version"}, []string{"--version"}},
		{[]string{"hosts", "ls", "--json"}, []string{"hosts", "ls", "--json"}},
	} {
		require.Equal(t, tc.want, leadingFlagsLast(tc.in), "%q", tc.in)
	}
}
