package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/blobs/blobstest"
)

func TestPut(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	s.MaxUncompressed = 4 << 20
	good := blobstest.DockerSaveTar(t, "hello:1", 1000)
	sum := sha256.Sum256(good)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	untaggedLayer := blobstest.Layer(t, 10)
	untagged := blobstest.Archive(t, blobstest.Image{Layers: [][]byte{untaggedLayer}})
	// 64 MiB of zeros in a ~64 KiB upload.
	bomb := blobstest.Archive(t, blobstest.Image{RepoTags: []string{"bomb:1"}, Layers: [][]byte{blobstest.GzipLayer(t, 64<<20)}})
	require.Less(t, len(bomb), 1<<20)

	cases := []struct {
		name         string
		body         []byte
		limit        int64
		want         string
		image        string
		uncompressed int64 // at least
		wantErr      error
		invalid      bool
		errSubstr    string
	}{
		{name: "docker save tarball", body: good, limit: 1 << 20, image: "hello:1", uncompressed: 1000 + 512},
		{name: "expected digest", body: good, limit: 1 << 20, want: digest, image: "hello:1", uncompressed: 1000 + 512},
		{name: "untagged image uses the config digest", body: untagged, limit: 1 << 20, image: blobstest.ConfigDigest(t, untaggedLayer)},
		{name: "too large", body: good, limit: 600, wantErr: ErrTooLarge},
		{name: "decompression bomb", body: bomb, limit: 1 << 20, wantErr: ErrUncompressedTooLarge, errSubstr: "4194304 bytes"},
		{name: "truncated", body: good[:700], limit: 1 << 20, invalid: true},
		{name: "not a tar", body: bytes.Repeat([]byte("text "), 300), limit: 1 << 20, invalid: true},
		{name: "empty", body: nil, limit: 1 << 20, invalid: true},
		{name: "two images", body: blobstest.Archive(t, blobstest.Image{Layers: [][]byte{untaggedLayer}, Images: 2}), limit: 1 << 20, invalid: true, errSubstr: "2 images"},
		{name: "digest mismatch", body: untagged, limit: 1 << 20, want: digest, errSubstr: "digest mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := s.Put(bytes.NewReader(tc.body), tc.limit, tc.want)
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.errSubstr)
			case tc.invalid:
				var inv *InvalidError
				require.True(t, errors.As(err, &inv), "got %v", err)
				require.ErrorContains(t, err, tc.errSubstr)
			case tc.errSubstr != "":
				require.ErrorContains(t, err, tc.errSubstr)
			default:
				require.NoError(t, err)
				require.Equal(t, tc.image, info.Image)
				require.Equal(t, int64(len(tc.body)), info.Size)
				require.GreaterOrEqual(t, info.Uncompressed, tc.uncompressed)
				f, _, err := s.Open(info.Digest)
				require.NoError(t, err)
				data, err := io.ReadAll(f)
				f.Close()
				require.NoError(t, err)
				require.Equal(t, tc.body, data)
			}
		})
	}
	require.True(t, s.Has(digest))
	require.NoError(t, s.Remove(digest))
	require.False(t, s.Has(digest))
	_, err = ParseDigest("sha256:../../etc/passwd")
	require.Error(t, err)
	list, err := s.List()
	require.NoError(t, err)
	for _, b := range list {
		require.NotEqual(t, "sha256:"+hex.EncodeToString(func() []byte { s := sha256.Sum256(bomb); return s[:] }()), b.Digest, "a refused bomb is not kept")
	}
}

// The default limit applies to a Store nobody configured.
func TestPutHasADefaultUncompressedLimit(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	require.Equal(t, DefaultMaxUncompressed, s.maxUncompressed())
}

func TestCollectRemovesOnlyOldUnreferencedBlobs(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	a, err := s.Put(bytes.NewReader(blobstest.DockerSaveTar(t, "a:1", 10)), 1<<20, "")
	require.NoError(t, err)
	b, err := s.Put(bytes.NewReader(blobstest.DockerSaveTar(t, "b:1", 20)), 1<<20, "")
	require.NoError(t, err)
	now := time.Now()
	removed, err := s.Collect(map[string]bool{a.Digest: true}, time.Hour, now)
	require.NoError(t, err)
	require.Empty(t, removed, "young blobs are kept")
	removed, err = s.Collect(map[string]bool{a.Digest: true}, time.Hour, now.Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{b.Digest}, removed)
	require.True(t, s.Has(a.Digest))
	require.False(t, s.Has(b.Digest))
}

// TestReplicatorFallsBackToTheOperatorToken: a peer of an older release
// knows no node token; replication retries with the operator token.
func TestReplicatorFallsBackToTheOperatorToken(t *testing.T) {
	tarball := blobstest.DockerSaveTar(t, "old:1", 4096)
	sum := sha256.Sum256(tarball)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer operator" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(tarball)
	}))
	t.Cleanup(peer.Close)
	for _, tc := range []struct {
		name, fallback string
		ok             bool
	}{{"without a fallback", "", false}, {"with the operator token as fallback", "operator", true}} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := Open(t.TempDir())
			require.NoError(t, err)
			rep := &Replicator{Store: store, Client: peer.Client(), Token: "node.x", FallbackToken: tc.fallback, Limit: 1 << 20}
			err = rep.Fetch(context.Background(), digest, []string{peer.URL})
			if !tc.ok {
				require.ErrorContains(t, err, "HTTP 401")
				return
			}
			require.NoError(t, err)
			require.True(t, store.Has(digest))
		})
	}
}
