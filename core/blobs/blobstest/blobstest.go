// Package blobstest builds image archives for tests of the core and its
// clients. It imports nothing of the core, so the core's own packages can use
// it without an import cycle.
package blobstest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// Image describes an archive shaped like `docker save` output.
type Image struct {
	RepoTags []string
	// Layers are the layer files as stored in the archive (a tar stream,
	// compressed or not; see Layer and GzipLayer).
	Layers [][]byte
	// Extra files added to the archive as they are (e.g. "repositories").
	Extra map[string][]byte
	// Images repeats the manifest entry this many times (0 or 1: one
	// image), for archives that hold several.
	Images int
}

// Archive builds the `docker save` archive of img: the layers under
// "<sha256>/layer.tar", a config named by its sha256, then manifest.json.
// It passes the core's checks but is not a runnable image.
func Archive(t testing.TB, img Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(data)
		require.NoError(t, err)
	}
	var layerNames []string
	for _, l := range img.Layers {
		sum := sha256.Sum256(l)
		name := hex.EncodeToString(sum[:]) + "/layer.tar"
		add(name, l)
		layerNames = append(layerNames, name)
	}
	cfg := imageConfig(t, img.Layers)
	cfgSum := sha256.Sum256(cfg)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	add(cfgName, cfg)
	for name, data := range img.Extra {
		add(name, data)
	}
	entry := map[string]any{"Config": cfgName, "RepoTags": img.RepoTags, "Layers": layerNames}
	manifest := []any{entry}
	for i := 1; i < img.Images; i++ {
		manifest = append(manifest, entry)
	}
	m, err := json.Marshal(manifest)
	require.NoError(t, err)
	add("manifest.json", m)
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// ConfigDigest is the image ID of an archive built by Archive with the same
// layers.
func ConfigDigest(t testing.TB, layers ...[]byte) string {
	t.Helper()
	sum := sha256.Sum256(imageConfig(t, layers))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// imageConfig is the image config Archive writes for layers (their
// sha256s as the diff ids); its sha256 is the image ID.
func imageConfig(t testing.TB, layers [][]byte) []byte {
	t.Helper()
	var diffIDs []string
	for _, l := range layers {
		sum := sha256.Sum256(l)
		diffIDs = append(diffIDs, "sha256:"+hex.EncodeToString(sum[:]))
	}
	cfg, err := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	require.NoError(t, err)
	return cfg
}

// Layer is a plain tar layer holding one file of size bytes of 'x'.
func Layer(t testing.TB, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}))
	chunk := bytes.Repeat([]byte{'x'}, 64<<10)
	for left := size; left > 0; left -= len(chunk) {
		_, err := tw.Write(chunk[:min(left, len(chunk))])
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

// GzipLayer is a gzip-compressed layer holding one file of size zero bytes:
// a decompression bomb when size is large (1 GiB takes ~1 MiB). It is built
// in constant time per MiB as a multi-member gzip stream (which Docker and
// Go read as one): the tar header, then the same compressed MiB of zeros
// repeated for the data, its padding and the end-of-archive blocks.
func GzipLayer(t testing.TB, size int) []byte {
	t.Helper()
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "data", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}))
	// Not closed: the header block is written, the zeros follow below.
	const chunk = 1 << 20
	zeros := (size+511)/512*512 + 1024
	var out bytes.Buffer
	out.Write(gzipOf(t, hdr.Bytes()))
	full := gzipOf(t, make([]byte, chunk))
	for ; zeros >= chunk; zeros -= chunk {
		out.Write(full)
	}
	out.Write(gzipOf(t, make([]byte, zeros)))
	return out.Bytes()
}

func gzipOf(t testing.TB, data []byte) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// DockerSaveTar builds a small archive shaped like `docker save` output
// (enough for the core, which checks the tar, its manifest.json and what
// the layers unpack to; not loadable by Docker): one image tagged tag with a
// layer holding layerBytes of data.
func DockerSaveTar(t testing.TB, tag string, layerBytes int) []byte {
	t.Helper()
	return Archive(t, Image{RepoTags: []string{tag}, Layers: [][]byte{Layer(t, layerBytes)}})
}
