// Package certseal seals the values of the certificate store before they
// enter the raft log: AES-256-GCM under a key every core node derives from
// the cluster CA's private key, with the storage key as additional data so
// a value cannot be moved to another key. Raft logs, snapshots and backups
// then hold no private key in the clear; a core node opens values only to
// hand them to the Fronts of the installation over the mesh.
package certseal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Label is what the sealing key is derived for (pki.CA.DeriveKey).
const Label = "potluck certificate store v1"

// version prefixes every sealed value, so the scheme can change later.
const version byte = 1

// Sealer seals and opens values; safe for concurrent use.
type Sealer struct{ aead cipher.AEAD }

// New returns a Sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("certseal: key of %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("certseal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("certseal: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts value for storage under name.
func (s *Sealer) Seal(name string, value []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(value)+s.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("certseal: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], value, []byte(name)), nil
}

// ErrOpen is returned for a value that was not sealed under this name with
// this cluster's key.
var ErrOpen = errors.New("certseal: value does not open with this cluster's key (sealed by another cluster CA, or moved)")

// Open decrypts a value sealed under name.
func (s *Sealer) Open(name string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != version {
		return nil, ErrOpen
	}
	out, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(name))
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
