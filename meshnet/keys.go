package meshnet

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/curve25519"
)

// KeySize is the length in bytes of a WireGuard (Curve25519) key.
const KeySize = 32

// PrivateKey is a clamped Curve25519 private key. Its String method is
// redacted so that a key logged by mistake does not leak; use Base64 on
// purpose, and only to write the host's own key file.
type PrivateKey [KeySize]byte

// PublicKey is a Curve25519 public key. Its text form is the base64 form `wg`
// prints, so it reads and writes naturally in JSON and config files.
type PublicKey [KeySize]byte

// GeneratePrivateKey returns a new random, clamped private key.
func GeneratePrivateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("generate private key: %w", err)
	}
	k.clamp()
	return k, nil
}

// clamp applies the Curve25519 clamping WireGuard expects (RFC 7748 §5).
func (k *PrivateKey) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public derives the public key.
func (k PrivateKey) Public() PublicKey {
	var pub PublicKey
	out, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		// X25519 with the base point fails only for an all-zero output, which a
		// clamped scalar cannot produce; a zero key yields a zero public key.
		return pub
	}
	copy(pub[:], out)
	return pub
}

// IsZero reports whether the key is unset.
func (k PrivateKey) IsZero() bool { return k == PrivateKey{} }

// String is redacted on purpose.
func (k PrivateKey) String() string { return "(private key)" }

// GoString is redacted on purpose, so %#v does not leak the key either.
func (k PrivateKey) GoString() string { return "meshnet.PrivateKey(redacted)" }

// Base64 is the `wg genkey` form of the key.
func (k PrivateKey) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// hex is the form the WireGuard UAPI wants.
func (k PrivateKey) hex() string { return hex.EncodeToString(k[:]) }

// ParsePrivateKey parses the base64 form written by `wg genkey` or Base64.
func ParsePrivateKey(s string) (PrivateKey, error) {
	var k PrivateKey
	if err := decodeKey(k[:], s); err != nil {
		return PrivateKey{}, fmt.Errorf("private key: %w", err)
	}
	if k.IsZero() {
		return PrivateKey{}, errors.New("private key: all zero")
	}
	k.clamp()
	return k, nil
}

// ParsePublicKey parses the base64 form of a public key.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	if err := decodeKey(k[:], s); err != nil {
		return PublicKey{}, fmt.Errorf("public key: %w", err)
	}
	if k.IsZero() {
		return PublicKey{}, errors.New("public key: all zero")
	}
	return k, nil
}

func decodeKey(dst []byte, s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		return errors.New("empty")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return errors.New("not valid base64 (expected the 44-character form `wg` prints)")
	}
	if len(b) != KeySize {
		return fmt.Errorf("decodes to %d bytes, want %d", len(b), KeySize)
	}
	copy(dst, b)
	return nil
}

// IsZero reports whether the key is unset.
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// String returns the base64 form.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex returns the lowercase hex form the WireGuard UAPI uses.
func (k PublicKey) Hex() string { return hex.EncodeToString(k[:]) }

// MarshalText implements encoding.TextMarshaler (base64).
func (k PublicKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (base64).
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// SavePrivateKey writes the key in base64 to path with mode 0600, atomically
// (a crash leaves either the old file or the new one, never half a key).
func SavePrivateKey(path string, k PrivateKey) error {
	if k.IsZero() {
		return errors.New("save private key: key is zero")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save private key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return fmt.Errorf("save private key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	// CreateTemp already uses 0600; Chmod guards against a permissive umask policy change.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save private key: %w", err)
	}
	if _, err := f.WriteString(k.Base64() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("save private key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save private key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save private key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save private key: %w", err)
	}
	return nil
}

// LoadPrivateKey reads a key written by SavePrivateKey (or `wg genkey`). It
// refuses a file that group or others can read, as ssh does.
func LoadPrivateKey(path string) (PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load private key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return PrivateKey{}, fmt.Errorf("load private key: %s has mode %#o; private keys must not be readable by group or others (chmod 600)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load private key: %w", err)
	}
	k, err := ParsePrivateKey(string(b))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("load private key %s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreatePrivateKey loads the key at path, or generates and saves one if
// the file does not exist. A host's key is created where it lives and never
// leaves it.
func LoadOrCreatePrivateKey(path string) (PrivateKey, error) {
	k, err := LoadPrivateKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if k, err = GeneratePrivateKey(); err != nil {
		return PrivateKey{}, err
	}
	if err := SavePrivateKey(path, k); err != nil {
		return PrivateKey{}, err
	}
	return k, nil
}

// decodeHexKey parses the 64-character hex form the UAPI prints.
func decodeHexKey(s string) ([KeySize]byte, error) {
	var k [KeySize]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != KeySize {
		return k, fmt.Errorf("key %q is not %d bytes of hex", s, KeySize)
	}
	copy(k[:], b)
	return k, nil
}
