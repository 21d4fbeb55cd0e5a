package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// handshakeTimeout bounds a raft connection's TLS handshake, so a peer that
// connects and stays silent holds nothing for long.
const handshakeTimeout = 10 * time.Second

// TLS is the mutual TLS raft runs over between core nodes (see core/pki).
type TLS struct {
	Server *tls.Config
	Client *tls.Config
}

// tlsStream is raft's stream layer over mutual TLS: a connection from a peer
// without a certificate of the cluster CA fails its handshake before raft
// reads a byte of it, so such a peer gets no vote, no append and no snapshot.
type tlsStream struct {
	ln        net.Listener
	advertise net.Addr
	tls       TLS

	mu     sync.Mutex
	warned map[string]bool // remote hosts already logged as refused
	refuse func(remote string, err error)
}

func newTLSStream(bind string, advertise net.Addr, t TLS, refused func(remote string, err error)) (*tlsStream, error) {
	if t.Server == nil || t.Client == nil {
		return nil, errors.New("cluster: raft TLS needs both a server and a client configuration")
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &tlsStream{ln: ln, advertise: advertise, tls: t, warned: map[string]bool{}, refuse: refused}, nil
}

// Accept hands raft a server-side TLS connection whose handshake runs (with
// a deadline) on raft's own connection goroutine, at its first read, so one
// slow client cannot stall the accept loop.
func (s *tlsStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: tls.Server(c, s.tls.Server), stream: s}, nil
}

func (s *tlsStream) Close() error   { return s.ln.Close() }
func (s *tlsStream) Addr() net.Addr { return s.advertise }

// Dial connects to a peer and completes the handshake before raft writes.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := tls.Dialer{Config: s.tls.Client}
	c, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("raft TLS dial %s: %w", address, err)
	}
	return c, nil
}

// logRefused reports a refused peer once per remote host.
func (s *tlsStream) logRefused(remote net.Addr, err error) {
	host, _, _ := net.SplitHostPort(remote.String())
	s.mu.Lock()
	first := !s.warned[host]
	s.warned[host] = true
	s.mu.Unlock()
	if first && s.refuse != nil {
		s.refuse(host, err)
	}
}

// handshakeConn completes the server handshake before the first read.
type handshakeConn struct {
	*tls.Conn
	stream *tlsStream
	once   sync.Once
	err    error
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if c.err = c.Conn.HandshakeContext(ctx); c.err != nil {
			c.stream.logRefused(c.RemoteAddr(), c.err)
			c.Conn.Close()
		}
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}
