// Package pki is the core's cluster certificate authority: raft traffic
// between core nodes is mutual TLS, and a node is a member because its
// certificate chains to the cluster CA. `potluck-core ca init` creates the CA
// once; the operator copies its directory to every core node (like a cluster
// secret), and each node issues itself a short-lived certificate from it at
// start, so no per-node certificate has to be distributed or renewed by hand.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names inside a CA directory.
const (
	CertFile = "ca.crt"
	KeyFile  = "ca.key"
)

// Lifetimes: the CA lives ten years; a node certificate is issued at every
// start and lives a year, so it never needs renewal while the node runs.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	nodeLifetime = 365 * 24 * time.Hour
	// clockSkew backdates certificates so peers with slightly slow clocks
	// accept them at once.
	clockSkew = time.Hour
)

// CA is the cluster's certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

// NewCA creates a CA in memory for the cluster named name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name + " cluster CA", Organization: []string{"potluck"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return newCA(cert, key), nil
}

func newCA(cert *x509.Certificate, key crypto.Signer) *CA {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, key: key, pool: pool}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

// Save writes the CA to dir (certificate 0644, key 0600). It refuses to
// overwrite an existing CA: replacing it would lock every node out.
func (ca *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	for _, f := range []string{CertFile, KeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("pki: %s already exists; a cluster keeps its CA (remove it by hand to start over)", filepath.Join(dir, f))
		}
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return fmt.Errorf("pki: encode CA key: %w", err)
	}
	if err := writeFile(filepath.Join(dir, KeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, CertFile), ca.CertPEM(), 0o644)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// Load reads a CA saved by Save. The key file must not be readable by
// group or others.
func Load(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("pki: cluster CA: %w (create one with `potluck-core ca init --out %s`)", err, dir)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: cluster CA key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("pki: %s is readable by others (mode %v); chmod 600 it", filepath.Join(dir, KeyFile), fi.Mode().Perm())
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: cluster CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate", filepath.Join(dir, CertFile))
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", filepath.Join(dir, CertFile), err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", filepath.Join(dir, CertFile))
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("pki: %s holds no PEM key", filepath.Join(dir, KeyFile))
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", filepath.Join(dir, KeyFile), err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("pki: %s: not a signing key", filepath.Join(dir, KeyFile))
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return nil, errors.New("pki: the CA key does not belong to the CA certificate")
	}
	return newCA(cert, signer), nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// LoadOrCreate loads the CA in dir, creating it first when dir holds none:
// the single-node development mode, where no other node needs to trust it.
func LoadOrCreate(dir, name string) (*CA, error) {
	if _, err := os.Stat(filepath.Join(dir, CertFile)); errors.Is(err, os.ErrNotExist) {
		ca, err := NewCA(name)
		if err != nil {
			return nil, err
		}
		if err := ca.Save(dir); err != nil {
			return nil, err
		}
		return ca, nil
	}
	return Load(dir)
}

// IssueNode issues a certificate for core node id, valid as TLS client and
// server, with hosts (DNS names or IPs) as extra subject alternative names.
func (ca *CA) IssueNode(id string, hosts ...string) (tls.Certificate, error) {
	der, key, err := ca.issue("node", &x509.Certificate{
		Subject:     pkix.Name{CommonName: id, Organization: []string{"potluck"}, OrganizationalUnit: []string{"core"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{id},
	}, hosts, nodeLifetime)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// issue signs, for a fresh P-256 key, a certificate of tmpl (subject and
// usages) valid from now (backdated by clockSkew) over lifetime, with hosts
// (DNS names or IPs) added as subject alternative names. what names the
// certificate in errors.
func (ca *CA) issue(what string, tmpl *x509.Certificate, hosts []string, lifetime time.Duration) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate %s key: %w", what, err)
	}
	now := time.Now()
	tmpl.SerialNumber = serial()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-clockSkew), now.Add(lifetime)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue %s certificate: %w", what, err)
	}
	return der, key, nil
}

// MutualTLS returns the server and client configurations of a node holding
// cert: TLS 1.3 only, and each side accepts only a peer whose certificate
// chains to this CA. Raft dials peers by address, not by name, so the client
// verifies the chain without a host name: membership is the CA's word.
func (ca *CA) MutualTLS(cert tls.Certificate) (server, client *tls.Config) {
	verify := func(usage x509.ExtKeyUsage) func(tls.ConnectionState) error {
		return func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: peer sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: ca.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}})
			if err != nil {
				return fmt.Errorf("pki: peer is not a member of this cluster: %w", err)
			}
			return nil
		}
	}
	server = &tls.Config{
		MinVersion:       tls.VersionTLS13,
		Certificates:     []tls.Certificate{cert},
		ClientAuth:       tls.RequireAndVerifyClientCert,
		ClientCAs:        ca.pool,
		VerifyConnection: verify(x509.ExtKeyUsageClientAuth),
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// The chain is verified in VerifyConnection against the cluster CA
		// only; skipping Go's own check avoids a host name raft lacks.
		InsecureSkipVerify: true,
		VerifyConnection:   verify(x509.ExtKeyUsageServerAuth),
	}
	return server, client
}

// NodeToken is the bearer token core nodes present to each other's public
// API: HMAC-SHA256 of a fixed label keyed by the CA's private key, so every
// node holding the cluster CA derives the same token and nothing else can.
// It does not depend on the operator token, so rotating that one never
// cuts the nodes off from each other.
func (ca *CA) NodeToken() (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return "", fmt.Errorf("pki: node token: %w", err)
	}
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte("potluck core node api token v1"))
	return "node." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// APILifetime is how long IssueAPI's certificates live by default.
const APILifetime = 2 * 365 * 24 * time.Hour

// IssueAPI issues a TLS server certificate for a core node's public API,
// valid for hosts (DNS names or IPs, at least one) over lifetime, and
// returns it as PEM (the certificate, then this CA's) with its PEM key.
// Agents and the CLI verify it with this CA's certificate (--core-ca,
// --ca). A CA of its own for the API (a second `ca init`) keeps the
// cluster CA's key on core nodes only; either works.
func (ca *CA) IssueAPI(hosts []string, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("pki: an API certificate needs at least one host name or IP")
	}
	der, key, err := ca.issue("API", &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0], Organization: []string{"potluck"}, OrganizationalUnit: []string{"core api"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, hosts, lifetime)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.CertPEM()...)
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// CertPEM is the CA's certificate as PEM (what clients trust).
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// DeriveKey is a 32-byte key for label, HMAC-SHA256 keyed by the CA's
// private key: every node holding the cluster CA derives the same key, and
// nothing without the CA key can (the certificate store's sealing key).
func (ca *CA) DeriveKey(label string) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: derive key: %w", err)
	}
	mac := hmac.New(sha256.New, der)
	mac.Write([]byte(label))
	return mac.Sum(nil), nil
}
