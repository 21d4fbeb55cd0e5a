package standalone

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/acmetest"
)

// TestTLSListenerServesH2AndHTTP11: a tls: listener serves the routes over
// HTTP/2 and HTTP/1.1 with the certificate from the files, picked by SNI.
func TestTLSListenerServesH2AndHTTP11(t *testing.T) {
	dir := t.TempDir()
	ca, certFile, keyFile := acmetest.CertificateFiles(t, dir, "site.test")
	for _, h2Server := range []string{"", "go", "native"} {
		t.Run("h2_server "+h2Server, func(t *testing.T) {
			b := backend(t, "b1")
			path := filepath.Join(dir, "front.yaml")
			writeFile(t, path, fmt.Sprintf(`listen: ["127.0.0.1:0"]
admin: ""
tls:
  listen: ["127.0.0.1:0"]
  certificates: [{cert: %q, key: %q}]
  h2_server: %q
routes:
  - default: true
    backends: [%s]
`, certFile, keyFile, h2Server, b))
			s, err := Start(RunOptions{ConfigPath: path, Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: 5 * time.Second})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Shutdown() })
			addr := s.TLSAddrs()[0].String()
			dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			for _, tc := range []struct {
				name  string
				tr    *http.Transport
				proto string
			}{
				{"h2", &http.Transport{DialContext: dial, ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: ca}}, "HTTP/2.0"},
				{"http/1.1", &http.Transport{DialContext: dial, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}, TLSClientConfig: &tls.Config{RootCAs: ca}}, "HTTP/1.1"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := &http.Client{Transport: tc.tr, Timeout: 10 * time.Second}
					for range 3 { // keep-alive: several requests on one connection
						resp, err := c.Get("https://site.test/x")
						require.NoError(t, err)
						body, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						require.NoError(t, err)
						require.Equal(t, 200, resp.StatusCode)
						require.Equal(t, tc.proto, resp.Proto)
						require.Equal(t, "b1", string(body))
					}
				})
			}
		})
	}
	_, err := Parse([]byte("tls:\n  listen: [\":443\"]\n  certificates: []\n  h2_server: fast\n"))
	require.ErrorContains(t, err, "tls.h2_server")
	_, err = Parse([]byte("tls:\n  listen: [\":443\"]\n  certificates: [{cert: /nope.crt, key: /nope.key}]\n"))
	require.ErrorContains(t, err, "tls.certificates[0]")
}

// TestFailedStartClosesEveryListener: when a listener cannot be opened,
// Start fails and leaves none open, the admin listener included (it was
// left serving when a tls.listen address was taken).
func TestFailedStartClosesEveryListener(t *testing.T) {
	dir := t.TempDir()
	_, certFile, keyFile := acmetest.CertificateFiles(t, dir, "site.test")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	free := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}
	plain, admin := free(), free()
	path := filepath.Join(dir, "front.yaml")
	writeFile(t, path, fmt.Sprintf(`listen: [%q]
admin: %q
tls:
  listen: [%q]
  certificates: [{cert: %q, key: %q}]
routes:
  - default: true
    backends: [127.0.0.1:9]
`, plain, admin, taken.Addr().String(), certFile, keyFile))
	_, err = Start(RunOptions{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorContains(t, err, "tls listen "+taken.Addr().String())
	for _, addr := range []string{plain, admin} {
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err, "%s is still open after the failed start", addr)
		_ = ln.Close()
	}
}
