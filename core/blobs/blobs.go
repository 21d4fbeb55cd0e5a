// Package blobs stores app image tarballs (`docker save` output) on a core
// node's disk, content-addressed by sha256, and replicates them between core
// nodes: a node that lacks a blob the state refers to fetches it from a peer
// and keeps it only if the digest matches.
package blobs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// ErrTooLarge means the upload exceeded the size limit.
var ErrTooLarge = errors.New("image tarball is larger than the size limit")

// InvalidError means the body is not a usable `docker save` tarball.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "not a docker save tarball: " + e.Reason }

// Info describes a stored blob.
type Info struct {
	Digest string // sha256:<hex>
	Size   int64
	Image  string // first repo tag in manifest.json, or the config digest
}

// Store is a directory of blobs named by their hex sha256.
type Store struct {
	dir string
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

// Put streams r to disk while hashing it and checking that it is a complete
// tar archive with a manifest.json, as `docker save` writes. At most limit
// bytes are accepted. want, if not empty, is the digest the content must have.
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
	image, terr := checkTar(body)
	if terr == nil {
		// Keep the end-of-archive padding so the digest covers the whole body.
		_, terr = io.Copy(io.Discard, body)
	}
	if counted.over {
		return Info{}, ErrTooLarge
	}
	if terr != nil {
		var inv *InvalidError
		if errors.As(terr, &inv) {
			return Info{}, terr
		}
		return Info{}, fmt.Errorf("read upload: %w", terr)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blobs: %w", err)
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	digest := "sha256:" + sum
	if want != "" && want != digest {
		return Info{}, fmt.Errorf("blob digest mismatch: got %s, want %s", digest, want)
	}
	size := limit - counted.left
	if err := os.Rename(tmp.Name(), s.path(sum)); err != nil {
		return Info{}, fmt.Errorf("blobs: %w", err)
	}
	return Info{Digest: digest, Size: size, Image: image}, nil
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

// checkTar reads the whole archive and returns the image name from
// manifest.json.
func checkTar(r io.Reader) (string, error) {
	tr := tar.NewReader(r)
	entries := 0
	image := ""
	found := false
	for entries < 1_000_000 {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return "", err
			}
			return "", &InvalidError{Reason: err.Error()}
		}
		entries++
		if path.Clean(hdr.Name) == "manifest.json" {
			found = true
			data, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return "", &InvalidError{Reason: "manifest.json: " + err.Error()}
			}
			image, err = imageFromManifest(data)
			if err != nil {
				return "", &InvalidError{Reason: "manifest.json: " + err.Error()}
			}
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			if errors.Is(err, ErrTooLarge) {
				return "", err
			}
			return "", &InvalidError{Reason: fmt.Sprintf("entry %q: %v", hdr.Name, err)}
		}
	}
	if entries == 0 {
		return "", &InvalidError{Reason: "archive is empty"}
	}
	if !found {
		return "", &InvalidError{Reason: "no manifest.json in the archive"}
	}
	return image, nil
}

func imageFromManifest(data []byte) (string, error) {
	var m []struct {
		Config   string
		RepoTags []string
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return "", err
	}
	if len(m) == 0 {
		return "", errors.New("lists no image")
	}
	if len(m[0].RepoTags) > 0 {
		return m[0].RepoTags[0], nil
	}
	cfg := strings.TrimSuffix(path.Base(m[0].Config), ".json")
	return "sha256:" + cfg, nil
}

// Replicator fetches missing blobs from peer core nodes.
type Replicator struct {
	Store  *Store
	Client *http.Client
	Token  string // operator token for the peers' /v1/blobs endpoint
	Limit  int64
	Log    *slog.Logger
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
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1/blobs/"+digest, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	resp, err := r.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
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
