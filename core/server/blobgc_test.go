package server

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/blobs/blobstest"
)

// ageBlobs makes every blob of node i look an hour old, past the ten
// minutes a blob no app uses is kept.
func (c *testCluster) ageBlobs(i int) {
	c.t.Helper()
	dir := filepath.Join(c.cfgs[i].DataDir, "blobs")
	entries, err := os.ReadDir(dir)
	require.NoError(c.t, err)
	old := time.Now().Add(-time.Hour)
	for _, e := range entries {
		if !e.IsDir() {
			require.NoError(c.t, os.Chtimes(filepath.Join(dir, e.Name()), old, old))
		}
	}
}

// Issue 11 finding 1: a core node started alone has applied nothing yet; it
// must not delete the image of an app it has not read about.
func TestNodeAloneKeepsBlobsItsStateDoesNotKnow(t *testing.T) {
	c := newTestCluster(t, 3, func(_ int, cfg *Config) { cfg.BlobGCSettle = 100 * time.Millisecond })
	tarball := blobstest.DockerSaveTar(t, "hello:1", 4096)
	r := call(t, "POST", c.nodes[c.leader()].URL()+"/v1/apps/hello/tarball?container_port=8080", testToken, tarball, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var app struct{ Digest string }
	r.json(t, &app)
	require.Eventually(t, func() bool { return c.nodes[0].Blobs.Has(app.Digest) }, 15*time.Second, 50*time.Millisecond)

	for i := range c.nodes {
		c.stop(i)
	}
	c.ageBlobs(0)
	c.start(0) // alone: no majority, no leader, an empty state
	time.Sleep(2 * time.Second)
	require.True(t, c.nodes[0].Blobs.Has(app.Digest), "a node without a majority deleted a blob in use")

	// Back with its peers, the node is current again; the app still uses the
	// blob, so it stays.
	c.start(1)
	c.start(2)
	c.waitSettled()
	time.Sleep(time.Second)
	require.True(t, c.nodes[0].Blobs.Has(app.Digest))
}

// Once an app is deleted, a current node removes its blob.
func TestCurrentNodeRemovesBlobsNoAppUses(t *testing.T) {
	c := newTestCluster(t, 1, func(_ int, cfg *Config) { cfg.BlobGCSettle = 100 * time.Millisecond })
	tarball := blobstest.DockerSaveTar(t, "bye:1", 4096)
	r := call(t, "POST", c.nodes[0].URL()+"/v1/apps/bye/tarball?container_port=8080", testToken, tarball, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var app struct{ Digest string }
	r.json(t, &app)
	// Before waiting for it to go: Has of an empty digest is false at once.
	require.True(t, strings.HasPrefix(app.Digest, "sha256:"), app.Digest)
	require.True(t, c.nodes[0].Blobs.Has(app.Digest))
	c.ageBlobs(0)
	r = c.call(0, "DELETE", "/v1/apps/bye", nil)
	require.Less(t, r.code, 300, r.String())
	require.Eventually(t, func() bool { return !c.nodes[0].Blobs.Has(app.Digest) }, 30*time.Second, 100*time.Millisecond)
}
