package lb

import (
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// BenchmarkProxyGET measures the request path (client → proxy → backend, all
// on 127.0.0.1) and its allocations. It is a benchmark, not a timed test.
func BenchmarkProxyGET(b *testing.B) {
	body := []byte("Hello from a Potluck app\n")
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	backend := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBody(body) }}
	go func() { _ = backend.Serve(bln) }()
	defer backend.Shutdown()

	p := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, p.Update([]Route{{Default: true, Backends: []Backend{{Addr: bln.Addr().String()}}}}))
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	go func() { _ = p.Serve(pln) }()
	defer p.server.Shutdown()

	client := &fasthttp.HostClient{Addr: pln.Addr().String(), MaxConns: 64}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://app.test/")
		for pb.Next() {
			if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("status %d err %v", resp.StatusCode(), err)
				return
			}
		}
	})
}
