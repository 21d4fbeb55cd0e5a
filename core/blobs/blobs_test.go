package blobs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func saveTar(t *testing.T, manifest string, layer int) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"layer.tar", bytes.Repeat([]byte{1}, layer)}, {"manifest.json", []byte(manifest)}} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))}))
		_, err := tw.Write(f.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return buf.Bytes()
}

func TestPut(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	good := saveTar(t, `[{"Config":"blobs/sha256/cfg","RepoTags":["hello:1"]}]`, 1000)
	sum := sha256.Sum256(good)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	untagged := saveTar(t, `[{"Config":"blobs/sha256/0123abcd","RepoTags":null}]`, 10)

	cases := []struct {
		name      string
		body      []byte
		limit     int64
		want      string
		image     string
		wantErr   error
		invalid   bool
		errSubstr string
	}{
		{name: "docker save tarball", body: good, limit: 1 << 20, image: "hello:1"},
		{name: "expected digest", body: good, limit: 1 << 20, want: digest, image: "hello:1"},
		{name: "untagged image uses the config digest", body: untagged, limit: 1 << 20, image: "sha256:0123abcd"},
		{name: "too large", body: good, limit: 600, wantErr: ErrTooLarge},
		{name: "truncated", body: good[:700], limit: 1 << 20, invalid: true},
		{name: "not a tar", body: bytes.Repeat([]byte("text "), 300), limit: 1 << 20, invalid: true},
		{name: "empty", body: nil, limit: 1 << 20, invalid: true},
		{name: "bad manifest", body: saveTar(t, `{`, 1), limit: 1 << 20, invalid: true},
		{name: "digest mismatch", body: untagged, limit: 1 << 20, want: digest, errSubstr: "digest mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := s.Put(bytes.NewReader(tc.body), tc.limit, tc.want)
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
			case tc.invalid:
				var inv *InvalidError
				require.True(t, errors.As(err, &inv), "got %v", err)
			case tc.errSubstr != "":
				require.ErrorContains(t, err, tc.errSubstr)
			default:
				require.NoError(t, err)
				require.Equal(t, tc.image, info.Image)
				require.Equal(t, int64(len(tc.body)), info.Size)
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
}

func TestCollectRemovesOnlyOldUnreferencedBlobs(t *testing.T) {
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	a, err := s.Put(bytes.NewReader(saveTar(t, `[{"RepoTags":["a:1"]}]`, 10)), 1<<20, "")
	require.NoError(t, err)
	b, err := s.Put(bytes.NewReader(saveTar(t, `[{"RepoTags":["b:1"]}]`, 20)), 1<<20, "")
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
