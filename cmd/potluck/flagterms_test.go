package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
)

func TestInFlagTerms(t *testing.T) {
	tests := []struct {
		name string
		in   error
		want string
	}{
		{"one field", &apiclient.Error{Status: 400, Message: "container_port is required: the app does not declare one"},
			"--port is required: the app does not declare one (HTTP 400)"},
		{"joined problems", &apiclient.Error{Status: 400, Message: "memory_mb must be at least 6 (default 256); disk_mb must not be negative"},
			"--memory must be at least 6 (default 256); --disk must not be negative (HTTP 400)"},
		{"word inside another is kept", &apiclient.Error{Status: 400, Message: "app image must be a reference"},
			"--app image must be a reference (HTTP 400)"},
		{"not a 400", &apiclient.Error{Status: 409, Message: "installation \"app\" already exists"},
			"installation \"app\" already exists (HTTP 409)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.EqualError(t, inFlagTerms(tc.in, deployFlags), tc.want)
		})
	}
	plain := errors.New("connection refused")
	require.Same(t, plain, inFlagTerms(plain, deployFlags))
}

// writeSave writes a minimal `docker save` layout: manifest.json last, as
// docker does.
func writeSave(t *testing.T, config string) string {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name, body string) {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(body))
		require.NoError(t, err)
	}
	add("abc123.json", config)
	add("manifest.json", `[{"Config":"abc123.json","RepoTags":["x:1"],"Layers":[]}]`)
	require.NoError(t, tw.Close())
	path := filepath.Join(t.TempDir(), "img.tar")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
	return path
}

func TestExposedPorts(t *testing.T) {
	ports, err := exposedPorts(writeSave(t, `{"config":{"ExposedPorts":{"8080/tcp":{},"53/udp":{},"9090/tcp":{}}}}`))
	require.NoError(t, err)
	require.Equal(t, []int{8080, 9090}, ports)
	ports, err = exposedPorts(writeSave(t, `{"config":{}}`))
	require.NoError(t, err)
	require.Empty(t, ports)
}
