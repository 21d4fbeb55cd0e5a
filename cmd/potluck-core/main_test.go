package main

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/cli"
)

func TestHelpDocumentsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var o options
	fs := newFlags(&o)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		require.Contains(t, out.String(), "--"+f.Name+"  ["+cli.EnvName(f.Name)+"]")
		require.NotEmpty(t, f.Usage)
	})
	require.Greater(t, n, 15)
}

func TestEnvironmentSetsFlagsButFlagsWin(t *testing.T) {
	t.Setenv("POTLUCK_DATA_DIR", "/from/env")
	t.Setenv("POTLUCK_HEARTBEAT_TTL", "45s")
	t.Setenv("POTLUCK_ID", "core7")
	var o options
	fs := newFlags(&o)
	require.NoError(t, cli.Parse(fs, []string{"--id", "core2"}))
	require.Equal(t, "/from/env", o.dataDir)
	require.Equal(t, "45s", o.heartbeatTTL.String())
	require.Equal(t, "core2", o.nodeID)

	t.Setenv("POTLUCK_MESH_PORT", "not-a-port")
	fs = newFlags(&o)
	err := cli.Parse(fs, nil)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "POTLUCK_MESH_PORT"))
}

func TestPortsAbove65535AreRefused(t *testing.T) {
	for _, flagName := range []string{"--mesh-port", "--agent-port", "--probe-port"} {
		err := run([]string{flagName, "70000"})
		require.ErrorContains(t, err, flagName+" 70000")
	}
}
