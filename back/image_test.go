package back

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agent"
	"potluck/agentproto"
	"potluck/back/engine"
	"potluck/bench/appimage"
	"potluck/core/blobs/blobstest"
	"potluck/internal/dockertest"
)

func connectEngine(t *testing.T) *engine.Engine {
	t.Helper()
	dockertest.Require(t)
	eng, err := engine.Connect(context.Background(), "", nil)
	require.NoError(t, err)
	t.Cleanup(func() { eng.Close() })
	return eng
}

// loadSample loads the sample app's image as appimage.DefaultTag and
// returns its ID.
func loadSample(t *testing.T, eng *engine.Engine) string {
	t.Helper()
	f, err := os.Open(dockertest.SampleImage(t))
	require.NoError(t, err)
	defer f.Close()
	id, err := eng.LoadImageAs(context.Background(), f, appimage.DefaultTag)
	require.NoError(t, err)
	return id
}

// tarEntry is one file of a tar archive, read whole.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTarEntries(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var entries []tarEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		require.NoError(t, err)
		data, err := io.ReadAll(tr)
		require.NoError(t, err)
		entries = append(entries, tarEntry{hdr, data})
	}
}

func writeTarEntries(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, e := range entries {
		require.NoError(t, tw.WriteHeader(e.hdr))
		_, err := tw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return out.Bytes()
}

// editManifest rewrites the first image of the archive's manifest.json.
func editManifest(t *testing.T, entries []tarEntry, edit func(image map[string]any)) {
	t.Helper()
	for i, e := range entries {
		if e.hdr.Name != "manifest.json" {
			continue
		}
		var m []map[string]any
		require.NoError(t, json.Unmarshal(e.data, &m))
		edit(m[0])
		data, err := json.Marshal(m)
		require.NoError(t, err)
		entries[i].data, entries[i].hdr.Size = data, int64(len(data))
	}
}

// retag copies a docker save tarball with manifest.json's RepoTags set to
// tags: what an attacker uploads.
func retag(t *testing.T, path string, tags []string) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	entries := readTarEntries(t, f)
	editManifest(t, entries, func(image map[string]any) { image["RepoTags"] = tags })
	return writeTarEntries(t, entries)
}

func tagForTest(t *testing.T, eng *engine.Engine, src, ref string) {
	t.Helper()
	require.NoError(t, eng.TagImage(context.Background(), src, ref))
	t.Cleanup(func() { eng.RemoveImage(context.Background(), ref) })
}

// An uploaded tarball whose RepoTags name a lender's own image and another
// app's Potluck image re-points neither: only Potluck's digest-derived name
// for this host is tagged, and it names the image the manifest describes.
func TestUntrustedTarballCannotRepointTags(t *testing.T) {
	eng := connectEngine(t)
	ctx := context.Background()
	sampleID := loadSample(t, eng)

	n := time.Now().UnixNano()
	lender := fmt.Sprintf("potluck-test-lender-%d:latest", n)
	otherApp := blobImage(fmt.Sprintf("h-other-%d", n), testDigest(n, 0))
	tagForTest(t, eng, sampleID, lender)
	tagForTest(t, eng, sampleID, otherApp)

	attack := retag(t, dockertest.ProbeImage(t), []string{lender, otherApp, "potluck-test-extra:latest"})
	mine := blobImage(fmt.Sprintf("h-me-%d", n), testDigest(n, 1))
	t.Cleanup(func() { eng.RemoveImage(context.Background(), mine) })
	probeID, err := eng.LoadImageAs(ctx, bytes.NewReader(attack), mine)
	require.NoError(t, err)
	require.NotEqual(t, sampleID, probeID)

	for ref, want := range map[string]string{lender: sampleID, otherApp: sampleID, mine: probeID} {
		id, err := eng.ImageID(ctx, ref)
		require.NoError(t, err)
		require.Equal(t, want, id, "%s", ref)
	}
	has, err := eng.HasImage(ctx, "potluck-test-extra:latest")
	require.NoError(t, err)
	require.False(t, has, "no name from the tarball was applied")

	// A manifest that names another config than the one the engine loads
	// is refused, and nothing is named.
	forged := forgeConfigName(t, attack)
	_, err = eng.LoadImageAs(ctx, bytes.NewReader(forged), mine+"-forged")
	require.ErrorContains(t, err, "not the image sha256:0000000000000000000000000000000000000000000000000000000000000001 the tarball's manifest names")
	has, err = eng.HasImage(ctx, mine+"-forged")
	require.NoError(t, err)
	require.False(t, has)
}

// forgeConfigName renames the config file and the manifest's reference to
// it to a digest the content does not have.
func forgeConfigName(t *testing.T, archive []byte) []byte {
	t.Helper()
	const fake = "0000000000000000000000000000000000000000000000000000000000000001"
	entries := readTarEntries(t, bytes.NewReader(archive))
	var cfg, forged string
	editManifest(t, entries, func(image map[string]any) {
		cfg = image["Config"].(string)
		forged = filepath.Join(filepath.Dir(cfg), fake+filepath.Ext(cfg))
		image["Config"] = forged
	})
	require.NotEmpty(t, cfg)
	for _, e := range entries {
		if e.hdr.Name == cfg {
			e.hdr.Name = forged
		}
	}
	return writeTarEntries(t, entries)
}

// A Back removes its own unused images only, never another Back's on the
// same engine, and only once they went unused for the keep time.
func TestImageCleanupRemovesOnlyThisHostsImages(t *testing.T) {
	eng := connectEngine(t)
	ctx := context.Background()
	sampleID := loadSample(t, eng)
	n := time.Now().UnixNano()
	me, other := fmt.Sprintf("h-me-%d", n), fmt.Sprintf("h-other-%d", n)
	used, unused := testDigest(n, 0), testDigest(n, 1)
	for _, ref := range []string{blobImage(me, used), blobImage(me, unused), blobImage(other, unused)} {
		tagForTest(t, eng, sampleID, ref)
	}
	has := func(ref string) bool {
		ok, err := eng.HasImage(ctx, ref)
		require.NoError(t, err)
		return ok
	}
	b := &Back{engine: eng, log: slog.New(slog.DiscardHandler)}
	// A malformed digest from the core (ensureImage refuses to run it) is
	// no image to keep, not a panic.
	instances := []agentproto.Instance{{ID: "i", Digest: used}, {ID: "bad", Digest: "sha256:abc"}}

	// Unused for less than the keep time: kept (scaled in and out again,
	// an installation starts from it instead of downloading it again).
	b.removeUnusedImages(ctx, me, instances, time.Hour)
	require.True(t, has(blobImage(me, unused)), "unused for less than the keep time")
	// Used again in between: its clock starts over.
	b.removeUnusedImages(ctx, me, append(instances, agentproto.Instance{ID: "j", Digest: unused}), time.Hour)
	require.NotContains(t, b.unusedSince, blobImage(me, unused))
	b.removeUnusedImages(ctx, me, instances, time.Hour)
	require.True(t, has(blobImage(me, unused)))
	// Past the keep time: removed.
	b.unusedSince[blobImage(me, unused)] = time.Now().Add(-2 * time.Hour)
	b.removeUnusedImages(ctx, me, instances, time.Hour)
	for ref, want := range map[string]bool{blobImage(me, used): true, blobImage(me, unused): false, blobImage(other, unused): true} {
		require.Equal(t, want, has(ref), "%s", ref)
	}
	require.Empty(t, b.unusedSince, "a removed image is forgotten")
	require.True(t, has(appimage.DefaultTag), "untagging never deletes an image others name")

	// Standing down (keep 0): every unused image goes at once.
	tagForTest(t, eng, sampleID, blobImage(me, unused))
	b.removeUnusedImages(ctx, me, nil, 0)
	require.False(t, has(blobImage(me, used)))
	require.False(t, has(blobImage(me, unused)))
	require.True(t, has(blobImage(other, unused)))
}

// A decompression bomb that would not leave the reserve free is refused
// before it is loaded; an image the core says is too big, before download.
func TestImagesThatDoNotFitOnDiskAreRefused(t *testing.T) {
	eng := connectEngine(t)
	ctx := context.Background()
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.tar")
	require.NoError(t, os.WriteFile(bomb, blobstest.Archive(t, blobstest.Image{Layers: [][]byte{blobstest.GzipLayer(t, 128<<20)}}), 0o600))
	small := filepath.Join(dir, "small.tar")
	require.NoError(t, os.WriteFile(small, blobstest.DockerSaveTar(t, "small:1", 1000), 0o600))

	b := &Back{engine: eng, log: slog.New(slog.DiscardHandler), cfg: Config{Agent: agent.Config{DataDir: dir}}}
	free, where, err := b.engineDiskFree(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, where)
	b.cfg.DiskReserve = free - 32<<20 // 32 MiB to spare

	err = b.checkUnpacked(ctx, bomb)
	require.ErrorIs(t, err, ErrDiskFull)
	require.ErrorContains(t, err, where)
	require.NoError(t, b.checkUnpacked(ctx, small))

	require.ErrorIs(t, b.fitsOnDisk(ctx, 1<<40), ErrDiskFull)
	require.NoError(t, b.fitsOnDisk(ctx, 1<<20))
}

func TestBlobImageNames(t *testing.T) {
	d := "sha256:" + fmt.Sprintf("%064x", 42)
	require.Equal(t, "potluck-blob/h-1f2e3d4c5b6a/000000000000000000000000:latest", blobImage("h-1f2e3d4c5b6a", d))
	odd := blobImage("Host With Spaces", d)
	require.Regexp(t, `^potluck-blob/h[0-9a-f]{16}/0{24}:latest$`, odd)
	require.NotEqual(t, blobImage("a", d), blobImage("b", d))
}

// testDigest is a digest whose name prefix differs with k and n.
func testDigest(n int64, k int) string { return fmt.Sprintf("sha256:%08x%016x%040x", k, n, 0) }
