package front

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// TestH2AdapterCarriesTheExchange: method, URI, Host, headers and body
// reach the fasthttp handler, which sees a TLS connection; status, headers
// and body come back, hop-by-hop headers dropped.
func TestH2AdapterCarriesTheExchange(t *testing.T) {
	a := &h2Adapter{log: slog.New(slog.DiscardHandler), handler: func(ctx *fasthttp.RequestCtx) {
		require.True(t, ctx.IsTLS())
		require.Equal(t, "PUT", string(ctx.Method()))
		require.Equal(t, "/x?q=1", string(ctx.RequestURI()))
		require.Equal(t, "site.test", string(ctx.Host()))
		require.Equal(t, "v", string(ctx.Request.Header.Peek("X-Test")))
		body, err := io.ReadAll(ctx.RequestBodyStream())
		require.NoError(t, err)
		ctx.Response.Header.Set("X-Got", string(body))
		ctx.Response.Header.Set("Connection", "keep-alive")
		ctx.SetStatusCode(201)
		ctx.SetBodyString("done")
	}}
	req := httptest.NewRequest(http.MethodPut, "https://site.test/x?q=1", strings.NewReader("payload"))
	req.Header.Set("X-Test", "v")
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	require.Equal(t, 201, rec.Code)
	require.Equal(t, "payload", rec.Header().Get("X-Got"))
	require.Empty(t, rec.Header().Get("Connection"))
	require.Equal(t, "done", rec.Body.String())
}

// BenchmarkH2Adapter is the adapter's own cost per request (no network):
// "request" knows the connection from each request, "conn" as TLSServer
// serves a connection's streams (forConn).
func BenchmarkH2Adapter(b *testing.B) {
	a := &h2Adapter{log: slog.New(slog.DiscardHandler), handler: func(ctx *fasthttp.RequestCtx) {
		ctx.Response.Header.Set("Content-Type", "text/plain")
		ctx.SetBodyString("Hello from a Potluck app\n")
	}}
	req := httptest.NewRequest(http.MethodGet, "https://site.test/", nil)
	req.Header.Set("User-Agent", "h2load")
	req.Header.Set("Accept", "*/*")
	req.TLS = &tls.ConnectionState{}
	client, server := net.Pipe()
	b.Cleanup(func() { client.Close(); server.Close() })
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"request", a},
		{"conn", a.forConn(tls.Server(server, &tls.Config{}))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				bc.h.ServeHTTP(rec, req)
			}
		})
	}
}
