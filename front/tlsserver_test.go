package front

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"

	"potluck/lb"
)

// TestTLSServerH2ThroughLB: with either HTTP/2 server, an h2 request
// reaches the backend as lb sends any HTTPS request (X-Forwarded-Proto
// https, the client's address in X-Real-IP and X-Forwarded-For, the Host
// and X-Forwarded-Host, the body), and the answer comes back whole,
// streamed bodies included; Close lets a request in flight finish.
func TestTLSServerH2ThroughLB(t *testing.T) {
	big := strings.Repeat("0123456789", 100_000) // 1 MB: streamed by lb, past the h2 windows
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/big" {
			_, _ = io.WriteString(w, big)
			return
		}
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"method": r.Method, "uri": r.RequestURI, "host": r.Host, "body": string(body),
			"proto": r.Header.Get("X-Forwarded-Proto"), "real-ip": r.Header.Get("X-Real-IP"),
			"xff": r.Header.Get("X-Forwarded-For"), "xfh": r.Header.Get("X-Forwarded-Host"),
			"cookie": r.Header.Get("Cookie"), "x-test": r.Header.Get("X-Test"),
		})
	}))
	t.Cleanup(backend.Close)
	cert := httptest.NewUnstartedServer(nil) // for its test certificate
	cert.StartTLS()
	pool := x509.NewCertPool()
	pool.AddCert(cert.Certificate())
	tlsCert := cert.TLS.Certificates[0]
	cert.Close()

	for _, kind := range []H2Server{H2Go, H2Native, ""} {
		t.Run("h2 server "+string(kind), func(t *testing.T) {
			proxy := lb.New(lb.Options{Logger: slog.New(slog.DiscardHandler)})
			require.NoError(t, proxy.Update([]lb.Route{{Default: true, Backends: []lb.Backend{{Addr: backend.Listener.Addr().String()}}}}))
			srv := NewTLSServer(&tls.Config{Certificates: []tls.Certificate{tlsCert}, NextProtos: []string{"h2", "http/1.1"}}, slog.New(slog.DiscardHandler), kind)
			require.Equal(t, kind == H2Go, srv.native == nil, "the server kind asked for (\"\": the default, native)")
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			go func() { _ = srv.Serve(ln, proxy) }()
			closed := false
			t.Cleanup(func() {
				if !closed {
					srv.Close(context.Background())
				}
				_ = proxy.Shutdown(context.Background())
			})
			addr := ln.Addr().String()
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http2.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"},
				DialTLSContext: func(ctx context.Context, network, _ string, cfg *tls.Config) (net.Conn, error) {
					return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
				}}}
			req, _ := http.NewRequest("POST", "https://site.test/x?q=1", strings.NewReader("payload"))
			req.Header.Set("X-Test", "v")
			req.Header.Add("Cookie", "a=1")
			req.Header.Add("Cookie", "b=2")
			resp, err := c.Do(req)
			require.NoError(t, err)
			var got map[string]string
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
			resp.Body.Close()
			require.Equal(t, "HTTP/2.0", resp.Proto)
			require.Equal(t, map[string]string{"method": "POST", "uri": "/x?q=1", "host": "site.test", "body": "payload",
				"proto": "https", "real-ip": "127.0.0.1", "xff": "127.0.0.1", "xfh": "site.test", "cookie": "a=1; b=2", "x-test": "v"}, got)

			resp, err = c.Get("https://site.test/big")
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.True(t, bytes.Equal([]byte(big), b), "1 MB body (%d bytes)", len(b))

			// Close with a request in flight: it finishes.
			done := make(chan error, 1)
			go func() {
				resp, err := c.Get("https://site.test/slow")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				done <- err
			}()
			time.Sleep(100 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Close(ctx)
			closed = true
			require.NoError(t, <-done)
		})
	}
}
