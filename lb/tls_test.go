package lb

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// TestTLSListenerForwardsHTTPSAndWraps: over a TLS listener the backend
// sees X-Forwarded-Proto: https (plain: http), and Options.Wrap runs
// around the proxy on both.
func TestTLSListenerForwardsHTTPSAndWraps(t *testing.T) {
	b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
	})
	// A certificate for 127.0.0.1 from httptest's built-in test CA.
	certSrv := httptest.NewTLSServer(http.NotFoundHandler())
	defer certSrv.Close()
	cert := certSrv.TLS.Certificates[0]

	p := New(Options{Logger: slog.New(slog.DiscardHandler), Wrap: func(next fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/wrapped" {
				ctx.SetStatusCode(fasthttp.StatusTeapot)
				return
			}
			next(ctx)
			ctx.Response.Header.Set("X-Wrapped", "yes")
		}
	}})
	require.NoError(t, p.Update([]Route{route("site.test", b.addr)}))
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = p.Serve(plain) }()
	go func() { _ = p.Serve(tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	client := certSrv.Client()
	client.Timeout = 10 * time.Second

	tests := []struct {
		name, url, want string
		code            int
	}{
		{"plain", "http://" + plain.Addr().String() + "/", "http", http.StatusOK},
		{"tls", "https://" + raw.Addr().String() + "/", "https", http.StatusOK},
		{"answered by the wrapper", "https://" + raw.Addr().String() + "/wrapped", "", http.StatusTeapot},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			require.NoError(t, err)
			req.Host = "site.test"
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.code, resp.StatusCode)
			require.Equal(t, tc.want, string(body))
			if tc.code == http.StatusOK {
				require.Equal(t, "yes", resp.Header.Get("X-Wrapped"))
			}
		})
	}
}
