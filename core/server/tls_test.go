package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/blobs/blobstest"
)

// selfSigned writes a certificate for 127.0.0.1 (its own CA) and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "potluck-core test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSClusterForwardsAndReplicates(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	c := newTestCluster(t, 3, func(_ int, cfg *Config) {
		cfg.TLSCertFile, cfg.TLSKeyFile, cfg.TLSCAFile = certFile, keyFile, certFile
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	f := c.follower()
	require.Contains(t, c.nodes[f].URL(), "https://")

	tarball := blobstest.DockerSaveTar(t, "tls:1", 1000)
	req, err := http.NewRequest("POST", c.nodes[f].URL()+"/v1/apps/tls/tarball?container_port=80", bytes.NewReader(tarball))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := client.Do(req)
	require.NoError(t, err)
	var app struct{ Digest string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&app))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.Eventually(t, func() bool {
		for _, n := range c.nodes {
			if !n.Blobs.Has(app.Digest) {
				return false
			}
		}
		return true
	}, 15*time.Second, 50*time.Millisecond)

	// Plain HTTP is refused on an HTTPS node.
	r := call(t, "GET", "http://"+c.cfgs[f].HTTPAddr+"/v1/status", testToken, nil, nil)
	require.Equal(t, http.StatusBadRequest, r.code, r.String())
}
