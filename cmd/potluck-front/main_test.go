package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHelpDocumentsEveryFlagWithItsEnv(t *testing.T) {
	var out bytes.Buffer
	code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &out)
	require.Equal(t, 0, code)
	for _, f := range []string{"config", "check", "watch-interval", "shutdown-timeout", "log-level", "log-format", "pprof"} {
		require.Contains(t, out.String(), "-"+f)
		env := "POTLUCK_" + strings.ToUpper(strings.ReplaceAll(f, "-", "_"))
		require.Contains(t, out.String(), env)
	}
}

func TestEnvAndCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(good, []byte("routes: [{default: true, backends: [127.0.0.1:9]}]\n"), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte("routes: [{default: true, backends: [{addr: '127.0.0.1:9', weight: -2}]}]\n"), 0o600))
	env := func(cfg string) func(string) string {
		return func(k string) string {
			return map[string]string{"POTLUCK_CONFIG": cfg, "POTLUCK_CHECK": "true"}[k]
		}
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), nil, env(good), &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "OK (1 listeners, 1 routes)")
	errOut.Reset()
	require.Equal(t, 1, run(context.Background(), nil, env(bad), &out, &errOut))
	require.Contains(t, errOut.String(), "routes[0].backends[0].weight")
	errOut.Reset()
	require.Equal(t, 2, run(context.Background(), nil, func(string) string { return "" }, &out, &errOut))
	require.Contains(t, errOut.String(), "--config (or POTLUCK_CONFIG) is required")
}
