package front

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"potluck/agentproto"
)

// TestHTTPSWrapPassesRequestsWithoutAllocating: wrap runs before lb for
// every request; a plain request to a domain neither redirected nor
// challenged reaches lb as it came, and an HTTPS one gets its HSTS header,
// at no allocation per request.
func TestHTTPSWrapPassesRequestsWithoutAllocating(t *testing.T) {
	h := &https{}
	routes := map[string]*tlsRoute{"site.test": newTLSRoute(&agentproto.RouteTLS{Mode: "acme", HSTSMaxAge: time.Hour})}
	h.routes.Store(&routes)
	served := 0
	handler := h.wrap(func(*fasthttp.RequestCtx) { served++ })
	for _, tc := range []struct {
		name string
		conn net.Conn // nil: plain
		hsts string
	}{
		{"plain", nil, ""},
		{"tls", &h2Conn{}, "max-age=3600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ctx fasthttp.RequestCtx
			if tc.conn != nil {
				ctx.Init2(tc.conn, nil, false)
			}
			ctx.Request.SetRequestURI("/x")
			ctx.Request.Header.SetHost("Site.Test:8080")
			served = 0
			handler(&ctx)
			require.Equal(t, 1, served)
			require.Equal(t, fasthttp.StatusOK, ctx.Response.StatusCode())
			require.Equal(t, tc.hsts, string(ctx.Response.Header.Peek("Strict-Transport-Security")))
			require.Zero(t, testing.AllocsPerRun(100, func() { handler(&ctx) }))
		})
	}
}
