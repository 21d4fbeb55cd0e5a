// Package imagetar reads `docker save` tarballs as untrusted input. Inspect
// finds the one image's manifest and counts what every layer unpacks to,
// streaming and bounded, so a decompression bomb is refused before it is
// expanded; StripTags rewrites a tarball so that loading it names nothing.
// The core validates uploads with it and a Back loads through it, so both
// sides agree on what an image tarball is. It imports only the standard
// library and a decompressor, so an agent carries none of the core.
package imagetar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Limits on the shape of a tarball, whatever its size.
const (
	// MaxEntries bounds the files of the archive plus those of all its
	// layers (a real image has thousands, not millions).
	MaxEntries = 2_000_000
	// MaxManifest bounds manifest.json and index.json.
	MaxManifest = 1 << 20
	// maxZstdWindow bounds the memory one zstd layer may make us allocate
	// (docker and containerd write 8 MiB windows at their default level).
	maxZstdWindow = 128 << 20
)

// ErrUncompressedTooLarge means the layers unpack to more than the limit.
var ErrUncompressedTooLarge = errors.New("image unpacks to more than the limit")

// FormatError means the input is not a usable `docker save` tarball.
type FormatError struct{ Reason string }

func (e *FormatError) Error() string { return e.Reason }

func invalid(format string, args ...any) error {
	return &FormatError{Reason: fmt.Sprintf(format, args...)}
}

// Summary describes a tarball that passed Inspect.
type Summary struct {
	// ConfigDigest is "sha256:<hex>" of the image config: the image ID
	// Docker gives the loaded image.
	ConfigDigest string
	// RepoTags are the names the tarball asks for (never applied by a Back;
	// shown to people only).
	RepoTags []string
	// Uncompressed is what the archive unpacks to: every layer counted as
	// the tar stream it decompresses to, with sparse files at their full
	// size (extraction writes them out), plus every other file.
	Uncompressed int64
}

// manifestEntry is one image of manifest.json.
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Inspect reads the whole archive from r and checks it is one image as
// `docker save` writes it: a manifest.json naming exactly one image whose
// config and layers are in the archive. Every entry is counted as what it
// unpacks to (gzip, bzip2 and zstd layers are decompressed on the fly, xz
// is refused) and reading stops with ErrUncompressedTooLarge as soon as the
// total passes maxUncompressed. Errors reading r are returned wrapped, bad
// content as a *FormatError.
func Inspect(r io.Reader, maxUncompressed int64) (Summary, error) {
	src := &errReader{r: r}
	sum, err := inspect(src, maxUncompressed)
	if err != nil && src.err != nil {
		// The source failed (a size limit, a dropped connection): that, not
		// the truncated archive it left, is the error.
		return Summary{}, fmt.Errorf("read image tarball: %w", src.err)
	}
	return sum, err
}

func inspect(r io.Reader, budget int64) (Summary, error) {
	tr := tar.NewReader(r)
	var (
		total    int64
		entries  int
		present  = map[string]bool{}
		manifest []manifestEntry
		found    bool
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Summary{}, invalid("reading the archive: %v", err)
		}
		if entries++; entries > MaxEntries {
			return Summary{}, invalid("more than %d files", MaxEntries)
		}
		name := path.Clean(hdr.Name)
		present[name] = true
		switch {
		case name == "manifest.json":
			data, err := io.ReadAll(io.LimitReader(tr, MaxManifest+1))
			if err != nil {
				return Summary{}, invalid("manifest.json: %v", err)
			}
			if len(data) > MaxManifest {
				return Summary{}, invalid("manifest.json is larger than %d bytes", MaxManifest)
			}
			if err := json.Unmarshal(data, &manifest); err != nil {
				return Summary{}, invalid("manifest.json: %v", err)
			}
			found = true
			total += int64(len(data))
		case hdr.FileInfo().Mode().IsRegular():
			n, inner, err := unpackedSize(tr, budget-total, MaxEntries-entries)
			if err != nil {
				if errors.Is(err, ErrUncompressedTooLarge) {
					return Summary{}, fmt.Errorf("%w of %d bytes (at %q)", ErrUncompressedTooLarge, budget, hdr.Name)
				}
				return Summary{}, fmt.Errorf("%q: %w", hdr.Name, err)
			}
			total += n
			entries += inner
		}
		// Symlinks (docker save links a layer it already wrote) and
		// directories unpack to nothing new.
		if total > budget {
			return Summary{}, fmt.Errorf("%w of %d bytes (at %q)", ErrUncompressedTooLarge, budget, hdr.Name)
		}
	}
	if entries == 0 {
		return Summary{}, invalid("the archive is empty")
	}
	if !found {
		return Summary{}, invalid("no manifest.json in the archive")
	}
	if len(manifest) != 1 {
		return Summary{}, invalid("manifest.json lists %d images; an app is one image (docker save IMAGE)", len(manifest))
	}
	m := manifest[0]
	cfg, err := configDigest(m.Config)
	if err != nil {
		return Summary{}, err
	}
	for _, name := range append([]string{m.Config}, m.Layers...) {
		if !present[path.Clean(name)] {
			return Summary{}, invalid("manifest.json names %q, which is not in the archive", name)
		}
	}
	return Summary{ConfigDigest: cfg, RepoTags: m.RepoTags, Uncompressed: total}, nil
}

// configDigest derives the image ID from the config's file name:
// "<hex>.json" (Docker before 25) or "blobs/sha256/<hex>" (OCI layout).
func configDigest(name string) (string, error) {
	h := strings.TrimSuffix(path.Base(name), ".json")
	if b, err := hex.DecodeString(h); err != nil || len(b) != 32 || strings.ToLower(h) != h {
		return "", invalid("manifest.json: config %q is not named by its sha256", name)
	}
	return "sha256:" + h, nil
}

// Magic numbers of the layer formats Docker detects.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// unpackedSize returns what one archive entry costs once loaded: a layer
// (a tar stream, compressed or not) as the size of its tar stream with
// sparse files expanded, anything else as its bytes. It reads no more than
// budget+1 unpacked bytes and counts the layer's own files.
func unpackedSize(r io.Reader, budget int64, maxEntries int) (int64, int, error) {
	br := bufio.NewReaderSize(r, 1024)
	head, _ := br.Peek(512)
	var layer io.Reader
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, 0, invalid("gzip: %v", err)
		}
		defer zr.Close()
		layer = zr
	case bytes.HasPrefix(head, magicBzip2):
		layer = bzip2.NewReader(br)
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(uint64(budget)+1))
		if err != nil {
			return 0, 0, invalid("zstd: %v", err)
		}
		defer zr.Close()
		layer = zr
	case bytes.HasPrefix(head, magicXz):
		return 0, 0, invalid("xz-compressed layers are not accepted; use plain, gzip, bzip2 or zstd layers (docker save writes plain ones)")
	case isTar(head):
		layer = br
	default:
		n, err := io.Copy(io.Discard, io.LimitReader(br, budget+1))
		if err != nil {
			return 0, 0, invalid("reading: %v", err)
		}
		if n > budget {
			return 0, 0, ErrUncompressedTooLarge
		}
		return n, 0, nil
	}
	return tarSize(layer, budget, maxEntries)
}

// isTar reports whether a block starts a ustar or GNU tar header.
func isTar(head []byte) bool {
	return len(head) >= 262 && bytes.HasPrefix(head[257:], []byte("ustar"))
}

// tarSize sums a layer's headers and file sizes as they will be written
// out. Sizes come from the headers, so a sparse file or a stream that
// promises more than it holds counts at its declared size; file data is
// skipped by the tar reader, decompressed but never kept.
func tarSize(r io.Reader, budget int64, maxEntries int) (int64, int, error) {
	tr := tar.NewReader(r)
	var total int64
	n := 0
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return total + 1024, n, nil // the end-of-archive blocks
		}
		if err != nil {
			return 0, n, invalid("layer is not a valid tar stream: %v", err)
		}
		if n++; n > maxEntries {
			return 0, n, invalid("more than %d files", MaxEntries)
		}
		if hdr.Size < 0 {
			return 0, n, invalid("layer file %q has a negative size", hdr.Name)
		}
		total += 512 + (hdr.Size+511)/512*512
		if total > budget || total < 0 {
			return 0, n, ErrUncompressedTooLarge
		}
	}
}

// errReader remembers the first error of the reader it wraps that is not
// io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}
