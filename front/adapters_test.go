package front

import (
	"crypto/tls"
	"fmt"
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

// TestCopyResponseHeader: every end-to-end header arrives with its values
// in order, hop-by-hop ones do not, whether the response has a few headers
// (batched) or more than maxBatchedHeaders (one by one).
func TestCopyResponseHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra int // X-Extra-N headers added
	}{{"few headers", 0}, {"more than the batch holds", maxBatchedHeaders + 5}} {
		t.Run(tc.name, func(t *testing.T) {
			var from fasthttp.ResponseHeader
			from.SetContentType("text/plain")
			from.SetContentLength(4)
			from.Add("Set-Cookie", "a=1")
			from.Add("Set-Cookie", "b=2")
			from.Set("Connection", "close")
			from.Set("X-Empty", "")
			want := http.Header{"Content-Type": {"text/plain"}, "Content-Length": {"4"},
				"Set-Cookie": {"a=1", "b=2"}, "X-Empty": {""}}
			for i := range tc.extra {
				k, v := fmt.Sprintf("X-Extra-%d", i), strings.Repeat("v", i*40)
				from.Add(k, v)
				want[k] = []string{v}
			}
			h := http.Header{}
			copyResponseHeader(h, &from)
			delete(h, "Server") // fasthttp's default, if any
			require.Equal(t, want, h)
			h["Set-Cookie"] = append(h["Set-Cookie"], "c=3")
			require.Equal(t, []string{"text/plain"}, h["Content-Type"], "appending to one value list leaves the others")
		})
	}
}

// BenchmarkH2Adapter is the adapter's own cost per request (no network):
// "request" knows the connection from each request, "conn" as TLSServer
// serves a connection's streams (forConn).
func BenchmarkH2Adapter(b *testing.B) {
	a := &h2Adapter{log: slog.New(slog.DiscardHandler), handler: func(ctx *fasthttp.RequestCtx) {
		// The headers of the bench-tls backends' answers.
		ctx.Response.Header.Set("Server", "fasthttp")
		ctx.Response.Header.Set("Date", "Wed, 02 Dec 2026 13:30:00 GMT")
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
