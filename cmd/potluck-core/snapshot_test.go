package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
	"potluck/internal/cli"
)

// TestSnapshotSaveAndRestoreCommands: `potluck-core snapshot save` against
// a running core writes a verified file; `snapshot restore` puts it into
// another (fresh) core, which then holds the first one's apps.
func TestSnapshotSaveAndRestoreCommands(t *testing.T) {
	from, to := apitest.Start(t), apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := from.Client.CreateImageApp(ctx, "web", "registry.example/web:1", 8080)
	require.NoError(t, err)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(apitest.Token+"\n"), 0o600))
	file := filepath.Join(dir, "cluster.snap")

	env, out, _ := cli.BufferEnv(nil)
	require.NoError(t, run([]string{"snapshot", "save", "--addr", from.URL, "--token-file", tokenFile, file}, env))
	require.Contains(t, out.String(), "saved to "+file)
	require.FileExists(t, file)
	require.NoFileExists(t, file+".tmp")

	env, out, _ = cli.BufferEnv(map[string]string{"POTLUCK_TOKEN_FILE": tokenFile})
	require.NoError(t, run([]string{"snapshot", "restore", "--addr", to.URL, file}, env))
	require.Contains(t, out.String(), "cluster state replaced")
	app, err := to.Client.App(ctx, "web")
	require.NoError(t, err)
	require.Equal(t, "registry.example/web:1", app.Image)

	damaged := filepath.Join(dir, "damaged.snap")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(damaged, data[:len(data)-5], 0o600))
	env, _, _ = cli.BufferEnv(nil)
	err = run([]string{"snapshot", "restore", "--addr", to.URL, "--token-file", tokenFile, damaged}, env)
	require.ErrorContains(t, err, "cut short")

	err = run([]string{"snapshot", "save", "--addr", from.URL, "--token", "wrong-token-0123456789", filepath.Join(dir, "x.snap")}, env)
	require.ErrorContains(t, err, "HTTP 401")
	require.NoFileExists(t, filepath.Join(dir, "x.snap"))

	for _, args := range [][]string{{"snapshot"}, {"snapshot", "take"}, {"snapshot", "save", "--token", "x"}, {"snapshot", "save", file}} {
		env, _, _ := cli.BufferEnv(nil)
		require.Error(t, run(args, env), "%v", args)
	}
}
