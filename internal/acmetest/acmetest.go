// Package acmetest runs Let's Encrypt's test ACME server, Pebble, for a
// test: built from the module's pinned tool dependency (go.mod `tool`),
// with its API on loopback under a certificate the test made, its
// validation authority resolving names through a DNS server of the test
// (only the names the test adds resolve, to 127.0.0.1) and connecting to
// the HTTP and TLS ports the test gives, so challenge traffic stays on
// loopback.
package acmetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"potluck/internal/freeport"
	"potluck/internal/testenv"
)

// Pebble is a Pebble server prepared for a test.
type Pebble struct {
	// Directory is the ACME directory URL.
	Directory string
	// APIRoots verify Pebble's own API (ACME clients need them).
	APIRoots *x509.CertPool
	// Validity is how long issued certificates live (set before Start;
	// default 90 days).
	Validity time.Duration

	dir, bin, apiAddr, mgmtAddr string
	certFile, keyFile           string
	dnsAddr                     string

	mu    sync.Mutex
	hosts map[string]bool
}

// New builds Pebble, makes its API certificate, reserves its ports and
// starts the DNS server; Start runs it.
func New(t testing.TB) *Pebble {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Missing(t, "the go command is needed to build Pebble")
	}
	p := &Pebble{dir: t.TempDir(), hosts: map[string]bool{}}
	p.bin = filepath.Join(p.dir, "pebble")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", p.bin, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput()
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("building Pebble (go.mod tool) failed: %v\n%s", err, out))
	}
	addrs, err := freeport.TCPs(2)
	if err != nil {
		t.Fatal(err)
	}
	p.apiAddr, p.mgmtAddr = addrs[0], addrs[1]
	p.Directory = "https://" + p.apiAddr + "/dir"
	p.APIRoots = p.makeAPICert(t)
	p.startDNS(t)
	return p
}

// AddHost makes name resolve to 127.0.0.1 for Pebble's validation; other
// names get NXDOMAIN (a domain nobody points at us).
func (p *Pebble) AddHost(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hosts[dns.Fqdn(strings.ToLower(name))] = true
}

// Start runs Pebble with its validation authority connecting to httpPort
// (HTTP-01) and tlsPort (TLS-ALPN-01) on 127.0.0.1, until the test ends.
func (p *Pebble) Start(t testing.TB, httpPort, tlsPort int) {
	t.Helper()
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": p.apiAddr, "managementListenAddress": p.mgmtAddr,
		"certificate": p.certFile, "privateKey": p.keyFile,
		"httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "",
		"externalAccountBindingRequired": false, "keyAlgorithm": "ecdsa",
		"retryAfter": map[string]int{"authz": 1, "order": 1},
		"profiles":   map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int64(p.validity() / time.Second)}},
	}}
	data, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(p.dir, "pebble.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "-config", cfgFile, "-dnsserver", p.dnsAddr)
	// No random sleeps before validation, no nonces rejected on purpose:
	// the test is about Potluck, not about ACME clients' retries.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	log, err := os.Create(filepath.Join(p.dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	// Pebble dies with the test binary, even when a timeout panic skips
	// the cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("pebble log:\n%s", b)
		}
	})
	client := p.client()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer on %s: %v", p.Directory, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *Pebble) validity() time.Duration {
	if p.Validity <= 0 {
		return 90 * 24 * time.Hour
	}
	return p.Validity
}

func (p *Pebble) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.APIRoots}}}
}

// IssuerRoots are the roots of the certificates Pebble issues (they change
// at every start of Pebble).
func (p *Pebble) IssuerRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := p.client().Get("https://" + p.mgmtAddr + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("pebble roots: HTTP %d: %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		t.Fatalf("pebble roots: no PEM certificate in %q", data)
	}
	return pool
}

// makeAPICert writes a CA and a certificate for 127.0.0.1 signed by it for
// Pebble's API, and returns the CA as a pool.
func (p *Pebble) makeAPICert(t testing.TB) *x509.CertPool {
	t.Helper()
	pool, certPEM, keyPEM := issue(t, "acmetest API CA", &x509.Certificate{Subject: pkix.Name{CommonName: "pebble"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}})
	p.certFile, p.keyFile = filepath.Join(p.dir, "api.crt"), filepath.Join(p.dir, "api.key")
	if err := os.WriteFile(p.certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return pool
}

// issue makes a CA named caName and a server certificate from leaf (its
// names) signed by it, valid from an hour ago for a day: the CA as a pool,
// the certificate and its key as PEM.
func issue(t testing.TB, caName string, leaf *x509.Certificate) (*x509.CertPool, []byte, []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: caName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf.SerialNumber = big.NewInt(2)
	leaf.NotBefore, leaf.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	leaf.ExtKeyUsage, leaf.KeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// startDNS answers A queries for the added hosts with 127.0.0.1, AAAA
// with no address, and NXDOMAIN for anything else, over UDP and TCP on one
// port (Pebble asks over TCP).
func (p *Pebble) startDNS(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.dnsAddr = ln.Addr().String()
	pc, err := net.ListenPacket("udp", p.dnsAddr)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{Listener: ln, Handler: dns.HandlerFunc(p.answer)}, {PacketConn: pc, Handler: dns.HandlerFunc(p.answer)}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
}

func (p *Pebble) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	for _, question := range q.Question {
		p.mu.Lock()
		known := p.hosts[strings.ToLower(question.Name)]
		p.mu.Unlock()
		if !known {
			m.Rcode = dns.RcodeNameError
			continue
		}
		if question.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A: net.ParseIP("127.0.0.1").To4()})
		}
	}
	_ = w.WriteMsg(m)
}

// Certificate makes a CA and a certificate for names signed by it, as an
// operator's own certificate: the CA as a pool, the chain and key as PEM.
func Certificate(t testing.TB, names ...string) (*x509.CertPool, []byte, []byte) {
	t.Helper()
	return issue(t, "acmetest operator CA", &x509.Certificate{Subject: pkix.Name{CommonName: names[0]}, DNSNames: names})
}

// CertificateFiles is Certificate written to dir as PEM files, as an
// operator supplies them: it returns the issuing CA and the two paths.
func CertificateFiles(t testing.TB, dir string, names ...string) (ca *x509.CertPool, certFile, keyFile string) {
	t.Helper()
	ca, certPEM, keyPEM := Certificate(t, names...)
	certFile, keyFile = filepath.Join(dir, names[0]+".crt"), filepath.Join(dir, names[0]+".key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ca, certFile, keyFile
}
