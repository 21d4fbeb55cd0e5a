package front

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"potluck/agentproto"
)

// TestHTTPSWrapPassesPlainRequestsWithoutAllocating: wrap runs before lb
// for every request; a plain request to a domain neither redirected nor
// challenged reaches lb as it came, at no cost per request.
func TestHTTPSWrapPassesPlainRequestsWithoutAllocating(t *testing.T) {
	h := &https{}
	routes := map[string]*agentproto.RouteTLS{"site.test": {Mode: "acme"}}
	h.routes.Store(&routes)
	served := 0
	handler := h.wrap(func(*fasthttp.RequestCtx) { served++ })
	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/x")
	ctx.Request.Header.SetHost("Site.Test:8080")
	handler(&ctx)
	require.Equal(t, 1, served)
	require.Equal(t, fasthttp.StatusOK, ctx.Response.StatusCode())
	require.Zero(t, testing.AllocsPerRun(100, func() { handler(&ctx) }))
}
