package lb

import (
	"crypto/tls"
	"net"
)

// TLS is terminated by the caller (a tls.Listener, or a listener handing
// over *tls.Conn after the handshake); lb keeps the connection's TLS-ness
// visible so that requests on it are forwarded with X-Forwarded-Proto:
// https and fasthttp's RequestCtx.IsTLS reports it.

// tlsConn is what fasthttp recognises as a TLS connection.
type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// tlsClientConn is a clientConn over a TLS connection.
type tlsClientConn struct {
	*clientConn
	tls tlsConn
}

func (c *tlsClientConn) Handshake() error                     { return c.tls.Handshake() }
func (c *tlsClientConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// wrapClient wraps an accepted connection, keeping it a TLS one if it was.
func wrapClient(c net.Conn, o *Options) net.Conn {
	cc := &clientConn{Conn: c, o: o, phase: phaseHeader}
	if t, ok := c.(tlsConn); ok {
		return &tlsClientConn{clientConn: cc, tls: t}
	}
	return cc
}
