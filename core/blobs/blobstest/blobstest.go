// Package blobstest builds image archives for tests of the core and its
// clients. It imports nothing of the core, so the core's own packages can use
// it without an import cycle.
package blobstest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// DockerSaveTar builds a small archive shaped like `docker save` output
// (enough for the core, which checks the tar and its manifest.json; not
// loadable by Docker).
func DockerSaveTar(t testing.TB, tag string, layerBytes int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	manifest := fmt.Sprintf(`[{"Config":"blobs/sha256/abc.json","RepoTags":[%q],"Layers":["blobs/sha256/layer"]}]`, tag)
	for _, f := range []struct {
		name string
		data []byte
	}{{"blobs/sha256/layer", bytes.Repeat([]byte{'x'}, layerBytes)}, {"blobs/sha256/abc.json", []byte(`{}`)}, {"manifest.json", []byte(manifest)}} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}))
		_, err := tw.Write(f.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}
