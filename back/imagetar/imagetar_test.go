package imagetar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"

	"potluck/core/blobs/blobstest"
)

func zstdLayer(t *testing.T, size int) []byte {
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	require.NoError(t, err)
	_, err = zw.Write(blobstest.Layer(t, size))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func TestInspect(t *testing.T) {
	plain := blobstest.Layer(t, 100_000)
	gz := blobstest.GzipLayer(t, 100_000)
	bomb := blobstest.GzipLayer(t, 64<<20)
	xz := append([]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, make([]byte, 100)...)
	layerSize := int64(512 + 100_000/512*512 + 512 + 1024) // header, padded data, end blocks

	for _, tc := range []struct {
		name        string
		archive     []byte
		limit       int64
		wantErr     error
		invalid     string
		atLeast     int64 // Uncompressed >= this
		atMost      int64
		wantConfigs []byte
	}{
		{name: "plain layer", archive: blobstest.Archive(t, blobstest.Image{RepoTags: []string{"a:1"}, Layers: [][]byte{plain}}),
			limit: 1 << 20, atLeast: layerSize, atMost: layerSize + 4096},
		{name: "gzip layer counted unpacked", archive: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{gz}}),
			limit: 1 << 20, atLeast: layerSize, atMost: layerSize + 4096},
		{name: "zstd layer counted unpacked", archive: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{zstdLayer(t, 100_000)}}),
			limit: 1 << 20, atLeast: layerSize, atMost: layerSize + 4096},
		{name: "gzip bomb", archive: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{bomb}}), limit: 16 << 20, wantErr: ErrUncompressedTooLarge},
		{name: "many small layers add up", archive: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{plain, blobstest.Layer(t, 100_001), blobstest.Layer(t, 100_002)}}),
			limit: 250_000, wantErr: ErrUncompressedTooLarge},
		{name: "xz layer", archive: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{xz}}), limit: 1 << 20, invalid: "xz-compressed"},
		{name: "gzip of something not a tar", archive: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{gzipOf(t, bytes.Repeat([]byte("no tar "), 200))}}), limit: 1 << 20, invalid: "not a valid tar"},
		{name: "two images", archive: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{plain}, Images: 2}), limit: 1 << 20, invalid: "lists 2 images"},
		{name: "no manifest", archive: tarOf(t, map[string][]byte{"x": []byte("y")}), limit: 1 << 20, invalid: "no manifest.json"},
		{name: "empty", archive: nil, limit: 1 << 20, invalid: "empty"},
		{name: "not a tar", archive: bytes.Repeat([]byte("text "), 300), limit: 1 << 20, invalid: "reading the archive"},
		{name: "manifest names a missing layer", archive: tarOf(t, map[string][]byte{
			"manifest.json": []byte(`[{"Config":"` + hex64 + `.json","Layers":["gone/layer.tar"]}]`), hex64 + ".json": []byte(`{}`)}),
			limit: 1 << 20, invalid: `names "gone/layer.tar"`},
		{name: "config not named by digest", archive: tarOf(t, map[string][]byte{
			"manifest.json": []byte(`[{"Config":"cfg.json","Layers":[]}]`), "cfg.json": []byte(`{}`)}),
			limit: 1 << 20, invalid: "not named by its sha256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := Inspect(bytes.NewReader(tc.archive), tc.limit)
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
			case tc.invalid != "":
				var fe *FormatError
				require.True(t, errors.As(err, &fe), "want a format error, got %v", err)
				require.ErrorContains(t, err, tc.invalid)
			default:
				require.NoError(t, err)
				require.GreaterOrEqual(t, sum.Uncompressed, tc.atLeast)
				require.LessOrEqual(t, sum.Uncompressed, tc.atMost)
				require.Regexp(t, `^sha256:[0-9a-f]{64}$`, sum.ConfigDigest)
			}
		})
	}
}

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// A bomb is refused after reading about the limit, not the whole of it.
func TestInspectStopsReadingABombAtTheLimit(t *testing.T) {
	bomb := blobstest.GzipLayer(t, 64<<20)
	archive := blobstest.Archive(t, blobstest.Image{Layers: [][]byte{bomb}})
	_, err := Inspect(bytes.NewReader(archive), 8<<20)
	require.ErrorIs(t, err, ErrUncompressedTooLarge)
	require.ErrorContains(t, err, "8388608 bytes")
}

// Errors of the source (a size limit) come back as themselves.
func TestInspectReturnsTheSourcesError(t *testing.T) {
	boom := errors.New("upload too large")
	archive := blobstest.DockerSaveTar(t, "a:1", 10_000)
	_, err := Inspect(io.MultiReader(bytes.NewReader(archive[:3000]), errReaderOf(boom)), 1<<20)
	require.ErrorIs(t, err, boom)
}

type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }

func errReaderOf(err error) io.Reader { return failing{err} }

func gzipOf(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	zw := newGzip(&buf)
	_, err := zw.Write(data)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func tarOf(t *testing.T, files map[string][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func readTar(t *testing.T, data []byte) map[string][]byte {
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		out[hdr.Name] = b
	}
}

func TestStripTagsLeavesNoNameToApply(t *testing.T) {
	layer := blobstest.Layer(t, 5000)
	index := `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:` + hex64 + `","size":1,` +
		`"annotations":{"io.containerd.image.name":"docker.io/library/victim:latest","org.opencontainers.image.ref.name":"latest","keep":"me"}}]}`
	archive := blobstest.Archive(t, blobstest.Image{
		RepoTags: []string{"victim:latest", "potluck-blob/h-other/abcdef:latest"},
		Layers:   [][]byte{layer},
		Extra:    map[string][]byte{"repositories": []byte(`{"victim":{"latest":"` + hex64 + `"}}`), "index.json": []byte(index), "oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	})
	var out bytes.Buffer
	cfg, err := StripTags(&out, bytes.NewReader(archive))
	require.NoError(t, err)
	require.Equal(t, blobstest.ConfigDigest(t, layer), cfg)

	in, got := readTar(t, archive), readTar(t, out.Bytes())
	require.NotContains(t, got, "repositories")
	var m []map[string]any
	require.NoError(t, json.Unmarshal(got["manifest.json"], &m))
	require.Len(t, m, 1)
	require.Nil(t, m[0]["RepoTags"])
	require.NotEmpty(t, m[0]["Layers"])
	require.NotContains(t, string(got["index.json"]), "victim")
	require.NotContains(t, string(got["index.json"]), "ref.name")
	require.Contains(t, string(got["index.json"]), `"keep":"me"`)
	for name, data := range in {
		if name == "manifest.json" || name == "index.json" || name == "repositories" {
			continue
		}
		require.Equal(t, data, got[name], "%s is copied unchanged", name)
	}
	// What comes out still passes Inspect, with the same image.
	sum, err := Inspect(bytes.NewReader(out.Bytes()), 1<<20)
	require.NoError(t, err)
	require.Equal(t, cfg, sum.ConfigDigest)
	require.Empty(t, sum.RepoTags)

	_, err = StripTags(io.Discard, bytes.NewReader(blobstest.Archive(t, blobstest.Image{Layers: [][]byte{layer}, Images: 2})))
	require.ErrorContains(t, err, "lists 2 images")
}

func newGzip(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }

// BenchmarkInspectGzipLayer measures counting a gzip layer: the cost of the
// bomb check per byte unpacked (SetBytes counts unpacked bytes).
func BenchmarkInspectGzipLayer(b *testing.B) {
	const size = 256 << 20
	archive := blobstest.Archive(b, blobstest.Image{Layers: [][]byte{blobstest.GzipLayer(b, size)}})
	b.SetBytes(size)
	for b.Loop() {
		if _, err := Inspect(bytes.NewReader(archive), 1<<40); err != nil {
			b.Fatal(err)
		}
	}
}
