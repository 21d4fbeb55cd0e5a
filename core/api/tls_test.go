package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

// selfSigned is a certificate for names valid from notBefore to notAfter,
// as PEM certificate and key.
func selfSigned(t *testing.T, notBefore, notAfter time.Time, names ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kd, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}

func TestInstallationTLS(t *testing.T) {
	sealed := func(key string, v []byte) ([]byte, error) {
		return append([]byte("sealed:"+key+":"), byte(len(v))), nil
	}
	f := newFixture(t, func(c *Config) { c.SealCert = sealed })
	f.cluster()
	f.call(http.MethodPost, "/v1/installations", `{"name":"shop","app":"web","fronts":1,"backs":1,"domain":"shop.example","tls":{"mode":"acme","redirect_http":true}}`, http.StatusCreated, nil)
	now := f.clock.Now()
	good, goodKey := selfSigned(t, now.Add(-time.Hour), now.Add(90*24*time.Hour), "shop.example")
	other, otherKey := selfSigned(t, now.Add(-time.Hour), now.Add(90*24*time.Hour), "other.example")
	old, oldKey := selfSigned(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), "shop.example")
	body := func(v map[string]any) string { b, _ := json.Marshal(v); return string(b) }

	tests := []struct {
		name string
		body string
		code int
		msg  string
	}{
		{"acme with HSTS", body(map[string]any{"mode": "acme", "hsts_max_age": 3600}), 200, ""},
		{"unknown mode", body(map[string]any{"mode": "letsencrypt"}), 400, "use acme, manual or off"},
		{"redirect without HTTPS", body(map[string]any{"mode": "off", "redirect_http": true}), 400, "need HTTPS"},
		{"HSTS beyond two years", body(map[string]any{"mode": "acme", "hsts_max_age": 10 * 365 * 86400}), 400, "hsts_max_age must be between"},
		{"manual without files", body(map[string]any{"mode": "manual"}), 400, "needs cert_pem and key_pem"},
		{"manual for another name", body(map[string]any{"mode": "manual", "cert_pem": other, "key_pem": otherKey}), 400, "does not cover the installation's domain"},
		{"manual with a key of another certificate", body(map[string]any{"mode": "manual", "cert_pem": good, "key_pem": otherKey}), 400, "private key does not match"},
		{"manual expired", body(map[string]any{"mode": "manual", "cert_pem": old, "key_pem": oldKey}), 400, "expired"},
		{"a certificate with acme", body(map[string]any{"mode": "acme", "cert_pem": good, "key_pem": goodKey}), 400, "for tls mode manual only"},
		{"manual", body(map[string]any{"mode": "manual", "cert_pem": good, "key_pem": goodKey, "redirect_http": true}), 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(request{method: http.MethodPut, path: "/v1/installations/shop/tls", token: operatorToken, body: tc.body})
			require.Equal(t, tc.code, rec.Code, rec.Body.String())
			if tc.msg != "" {
				require.Contains(t, rec.Body.String(), tc.msg)
			}
		})
	}
	st := f.node.State()
	require.Equal(t, &fsm.TLSOptions{Mode: fsm.TLSManual, RedirectHTTP: true}, st.Installations["shop"].TLS)
	e := st.Certs[ManualCertKey("shop.example")]
	require.NotNil(t, e, "the uploaded certificate is in the store")
	require.True(t, strings.HasPrefix(string(e.Value), "sealed:manual/shop.example/cert.pem:"), "stored sealed, never in the clear")

	var v InstallationView
	f.call(http.MethodGet, "/v1/installations/shop", "", http.StatusOK, &v)
	require.Equal(t, "https://shop.example/", v.URL)

	f.call(http.MethodPut, "/v1/installations/nope/tls", `{"mode":"acme"}`, http.StatusNotFound, nil)
	f.call(http.MethodPost, "/v1/installations", `{"name":"man","app":"web","fronts":1,"backs":1,"domain":"man.example","tls":{"mode":"manual"}}`, http.StatusBadRequest, nil)
}
