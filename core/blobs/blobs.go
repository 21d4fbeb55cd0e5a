// Package blobs stores app image tarballs (`docker save` output) on a core
// node's disk, content-addressed by sha256, and replicates them between core
// nodes: a node that lacks a blob the state refers to fetches it from a peer
// and keeps it only if the digest matches.
package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"potluck/back/imagetar"
)

// ErrTooLarge means the upload exceeded the size limit.
var ErrTooLarge = errors.New("image tarball is larger than the size limit")

// ErrUncompressedTooLarge means the image's layers unpack to more than the
// Store's MaxUncompressed (a decompression bomb, or simply too big an image).
// Its message names the limit and the file where the count passed it.
var ErrUncompressedTooLarge = imagetar.ErrUncompressedTooLarge

// InvalidError means the body is not a usable `docker save` tarball.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "not a docker save tarball: " + e.Reason }

// Info describes a stored blob.
type Info struct {
	Digest string // sha256:<hex>
	Size   int64  // of the tarball
	// Uncompressed is what the image unpacks to on a Back (layers
	// decompressed, sparse files written out): what placement must find
	// free on a host's disk.
	Uncompressed int64
	// Image is the first repo tag in manifest.json, or the config digest:
	// for people to read. A Back never applies the tarball's tags.
	Image string
}

// Store is a directory of blobs named by their hex sha256.
type Store struct {
	dir string
	// MaxUncompressed bounds what an image may unpack to; 0 means
	// DefaultMaxUncompressed. Set it before the first Put.
	MaxUncompressed int64
}

// Open creates the directory if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	return &Store{dir: dir}, nil
}

// ParseDigest validates "sha256:<64 hex>" and returns the hex part.
func ParseDigest(d string) (string, error) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("digest %q: want sha256:<64 hex digits>", d)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("digest %q: want lowercase hex", d)
	}
	return h, nil
}

func (s *Store) path(hexDigest string) string { return filepath.Join(s.dir, hexDigest) }

// Has reports whether the blob is stored.
func (s *Store) Has(digest string) bool {
	h, err := ParseDigest(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(s.path(h))
	return err == nil
}

// Open opens a stored blob.
func (s *Store) Open(digest string) (*os.File, int64, error) {
	h, err := ParseDigest(digest)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(h))
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blob %s: %w", digest, err)
	}
	return f, st.Size(), nil
}

// Remove deletes a blob (missing is fine).
func (s *Store) Remove(digest string) error {
	h, err := ParseDigest(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove blob: %w", err)
	}
	return nil
}

// DefaultMaxUncompressed is what an image may unpack to when the Store is
// not told otherwise: far above a real web app's image, far below a disk.
const DefaultMaxUncompressed int64 = 8 << 30

// Put streams r to disk while hashing it and checking that it is one image
// as `docker save` writes it (imagetar.Inspect): a manifest.json naming its
// config and layers, each layer counted as what it unpacks to. At most limit
// bytes are accepted, and an image that unpacks to more than the Store's
// MaxUncompressed is refused (ErrUncompressedTooLarge) as soon as the count
// passes it, without unpacking the rest. want, if not empty, is the digest
// the content must have.
func (s *Store) Put(r io.Reader, limit int64, want string) (Info, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "upload-*")
	if err != nil {
		return Info{}, fmt.Errorf("blobs: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()

	hash := sha256.New()
	counted := &limitReader{r: r, left: limit}
	body := io.TeeReader(counted, io.MultiWriter(tmp, hash))
	sum, terr := imagetar.Inspect(body, s.maxUncompressed())
	if terr == nil {
		// Keep the end-of-archive padding so the digest covers the whole body.
		_, terr = io.Copy(io.Discard, body)
	}
	if counted.over {
		return Info{}, ErrTooLarge
	}
	if terr != nil {
		var fe *imagetar.FormatError
		switch {
		case errors.Is(terr, imagetar.ErrUncompressedTooLarge):
			return Info{}, terr
		case errors.As(terr, &fe):
			return Info{}, &InvalidError{Reason: fe.Reason}
		}
		return Info{}, fmt.Errorf("read upload: %w", terr)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blobs: %w", err)
	}
	hexSum := hex.EncodeToString(hash.Sum(nil))
	digest := "sha256:" + hexSum
	if want != "" && want != digest {
		return Info{}, fmt.Errorf("blob digest mismatch: got %s, want %s", digest, want)
	}
	size := limit - counted.left
	if err := os.Rename(tmp.Name(), s.path(hexSum)); err != nil {
		return Info{}, fmt.Errorf("blobs: %w", err)
	}
	image := sum.ConfigDigest
	if len(sum.RepoTags) > 0 {
		image = sum.RepoTags[0]
	}
	return Info{Digest: digest, Size: size, Uncompressed: sum.Uncompressed, Image: image}, nil
}

func (s *Store) maxUncompressed() int64 {
	if s.MaxUncompressed > 0 {
		return s.MaxUncompressed
	}
	return DefaultMaxUncompressed
}

// limitReader reads at most left bytes and records whether more was offered.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, _ := l.r.Read(one[:])
		if n > 0 {
			l.over = true
			return 0, ErrTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// Replicator fetches missing blobs from peer core nodes.
type Replicator struct {
	Store  *Store
	Client *http.Client
	Token  string // core nodes' node token for the peers' /v1/blobs endpoint
	// FallbackToken is tried when a peer refuses Token (401): a peer of an
	// older release, during a rolling upgrade, knows the operator token only.
	FallbackToken string
	Limit         int64
	Log           *slog.Logger
}

// Fetch copies one blob from the first peer that has it. peers are API base
// URLs. The digest is verified before the blob is kept.
func (r *Replicator) Fetch(ctx context.Context, digest string, peers []string) error {
	if r.Store.Has(digest) {
		return nil
	}
	var errs []error
	for _, base := range peers {
		err := r.fetchFrom(ctx, base, digest)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("fetch blob %s: %w", digest, errors.Join(errs...))
}

func (r *Replicator) fetchFrom(ctx context.Context, base, digest string) error {
	err := r.fetchWith(ctx, base, digest, r.Token)
	if errors.Is(err, errUnauthorized) && r.FallbackToken != "" {
		err = r.fetchWith(ctx, base, digest, r.FallbackToken)
	}
	return err
}

var errUnauthorized = errors.New("HTTP 401")

func (r *Replicator) fetchWith(ctx context.Context, base, digest, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/blobs/"+digest, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s: %w", base, errUnauthorized)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", base, resp.StatusCode)
	}
	_, err = r.Store.Put(resp.Body, r.Limit, digest)
	return err
}

// Stored is a blob on disk.
type Stored struct {
	Digest  string
	ModTime time.Time
}

// List returns the stored blobs.
func (s *Store) List() ([]Stored, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("blobs: %w", err)
	}
	var out []Stored
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		d := "sha256:" + e.Name()
		if _, err := ParseDigest(d); err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, Stored{Digest: d, ModTime: info.ModTime()})
	}
	return out, nil
}

// Collect removes blobs that keep does not list and that are older than
// minAge (younger ones may belong to an upload whose app is being committed),
// and upload leftovers in tmp/ older than a day. It returns what it removed.
func (s *Store) Collect(keep map[string]bool, minAge time.Duration, now time.Time) ([]string, error) {
	list, err := s.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, b := range list {
		if keep[b.Digest] || now.Sub(b.ModTime) < minAge {
			continue
		}
		if err := s.Remove(b.Digest); err != nil {
			return removed, err
		}
		removed = append(removed, b.Digest)
	}
	tmp, err := os.ReadDir(filepath.Join(s.dir, "tmp"))
	if err != nil {
		return removed, fmt.Errorf("blobs: %w", err)
	}
	for _, e := range tmp {
		if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > 24*time.Hour {
			_ = os.Remove(filepath.Join(s.dir, "tmp", e.Name()))
		}
	}
	return removed, nil
}
