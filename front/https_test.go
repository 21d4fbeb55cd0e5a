package front

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
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

// TestGetCertificateServesOnlyHTTPSDomains: a handshake for a domain the
// Front does not serve with HTTPS is refused before certmagic's cache is
// looked at; a CA's TLS-ALPN-01 check (acme-tls/1 alone) still reaches
// certmagic, which answers challenges only. The core is unreachable here
// (the fault injected), so certmagic finds no challenge either.
func TestGetCertificateServesOnlyHTTPSDomains(t *testing.T) {
	unreachable := func(context.Context, string, string, []byte, int64) (int, []byte, error) {
		return 0, nil, errors.New("core unreachable")
	}
	h := newHTTPS(HTTPSConfig{}, "front1", unreachable, func(agentproto.TLSReport) {}, slog.New(slog.DiscardHandler))
	t.Cleanup(h.close)
	for _, tc := range []struct {
		name    string
		protos  []string
		refused bool // by the route check, not by certmagic
	}{
		{"h2 client", []string{"h2", "http/1.1"}, true},
		{"no ALPN", nil, true},
		{"acme-tls/1 among others", []string{"h2", acmez.ACMETLS1Protocol}, true},
		{"a CA's TLS-ALPN-01 check", []string{acmez.ACMETLS1Protocol}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			go func() {
				_ = tls.Client(client, &tls.Config{ServerName: "off.example", NextProtos: tc.protos, InsecureSkipVerify: true}).Handshake()
				client.Close()
			}()
			err := tls.Server(server, h.srv.tls).Handshake()
			require.Error(t, err)
			require.Equal(t, tc.refused, strings.Contains(err.Error(), "no HTTPS for server name"), "%v", err)
		})
	}
}
