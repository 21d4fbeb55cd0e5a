package acmetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSPCertificate is an operator's certificate whose issuer runs an OCSP
// responder on loopback (Let's Encrypt ended OCSP in 2025, so no real CA of
// the tests offers one; the responder is the one fake, built on
// golang.org/x/crypto/ocsp, answering "good" for the certificate).
type OCSPCertificate struct {
	Roots *x509.CertPool
	// ChainPEM is the leaf then its CA; KeyPEM the leaf's key.
	ChainPEM, KeyPEM []byte
	Leaf, CA         *x509.Certificate
	// Requests counts the OCSP requests the responder answered.
	Requests atomic.Int64
}

// CertificateWithOCSP makes a CA, a certificate for names naming the CA's
// OCSP responder (an HTTP server on 127.0.0.1, stopped with the test) and
// the responder.
func CertificateWithOCSP(t testing.TB, names ...string) *OCSPCertificate {
	t.Helper()
	oc := &OCSPCertificate{}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := ocsp.ParseRequest(body)
		if err != nil || req.SerialNumber.Cmp(oc.Leaf.SerialNumber) != 0 {
			w.Header().Set("Content-Type", "application/ocsp-response")
			_, _ = w.Write(ocsp.UnauthorizedErrorResponse)
			return
		}
		now := time.Now()
		resp, err := ocsp.CreateResponse(oc.CA, oc.CA, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
			ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, caKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		oc.Requests.Add(1)
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)

	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acmetest OCSP CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	oc.CA, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		OCSPServer: []string{srv.URL}}
	der, err := x509.CreateCertificate(rand.Reader, leafTmpl, oc.CA, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	oc.Leaf, _ = x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	oc.Roots = x509.NewCertPool()
	oc.Roots.AddCert(oc.CA)
	oc.ChainPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	oc.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	return oc
}

// CheckStaple verifies an OCSP staple a server sent for the certificate:
// signed by its CA, for its serial number, status good.
func (oc *OCSPCertificate) CheckStaple(staple []byte) error {
	resp, err := ocsp.ParseResponseForCert(staple, oc.Leaf, oc.CA)
	if err != nil {
		return err
	}
	if resp.Status != ocsp.Good {
		return errNotGood
	}
	return nil
}

var errNotGood = errors.New("acmetest: OCSP status is not good")
