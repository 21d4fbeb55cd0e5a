package front

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http2"

	"potluck/front/h2"
	"potluck/lb"
)

const (
	handshakeTimeout = 10 * time.Second
	// maxHandshakes bounds connections waiting for their TLS handshake.
	maxHandshakes = 4096
)

// H2Server picks the HTTP/2 server of a TLSServer.
type H2Server string

const (
	// H2Go is Go's HTTP/2 server (golang.org/x/net/http2), its requests
	// converted to fasthttp ones for lb by the h2 adapter.
	H2Go H2Server = "go"
	// H2Native is the Front's own (package front/h2): streams go
	// straight to lb's fasthttp handler.
	H2Native H2Server = "native"
	// DefaultH2Server is the one used when none is chosen: the native
	// one, 0.57-0.65x the CPU per request of Go's (docs/benchmarks.md).
	DefaultH2Server = H2Native
)

// ParseH2Server checks a setting's value; "" is DefaultH2Server.
func ParseH2Server(s string) (H2Server, error) {
	switch H2Server(s) {
	case "":
		return DefaultH2Server, nil
	case H2Go, H2Native:
		return H2Server(s), nil
	}
	return "", fmt.Errorf("h2 server %q: want %q or %q", s, H2Go, H2Native)
}

// TLSServer terminates TLS in front of an lb.Proxy: the handshake picks the
// certificate (by SNI, through the tls.Config) and ALPN the protocol.
// HTTP/1.1 connections go to the proxy's own fasthttp server; h2 ones to
// an HTTP/2 server that hands their streams to the proxy's handler (the
// Front's own, front/h2, or Go's through the h2 adapter), so both
// protocols get lb's routing and balancing. A connection that negotiated
// any other protocol (acme-tls/1: a CA's TLS-ALPN-01 check) is closed
// after its handshake.
type TLSServer struct {
	tls    *tls.Config
	log    *slog.Logger
	native *h2.Server // nil: Go's HTTP/2 server (h2, h2srv)
	h2     *http2.Server
	h2srv  *http.Server
	h2open sync.WaitGroup
	bufs   writeBuffers // h2 connections' write batches
	ctx    context.Context
	stop   context.CancelFunc

	mu  sync.Mutex
	h1  []*connQueue
	lns []net.Listener
}

// NewTLSServer serves with cfg, h2 with the server kind picks ("":
// DefaultH2Server); cfg's NextProtos should offer h2 and http/1.1.
func NewTLSServer(cfg *tls.Config, log *slog.Logger, kind H2Server) *TLSServer {
	s := &TLSServer{tls: cfg, log: log}
	s.ctx, s.stop = context.WithCancel(context.Background())
	if kind == "" {
		kind = DefaultH2Server
	}
	if kind == H2Native {
		s.native = h2.New(h2.Config{Logger: log, MaxStreams: 250, ReadTimeout: handshakeTimeout, IdleTimeout: 2 * time.Minute})
	}
	s.h2srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.h2 = &http2.Server{IdleTimeout: 2 * time.Minute, MaxConcurrentStreams: 250}
	// Ties the h2 connections to h2srv, so its Shutdown sends them GOAWAY.
	if err := http2.ConfigureServer(s.h2srv, s.h2); err != nil {
		log.Warn("h2: graceful shutdown unavailable", "err", err)
	}
	return s
}

// Serve accepts TLS clients on ln (raw TCP) for proxy until Close.
func (s *TLSServer) Serve(ln net.Listener, proxy *lb.Proxy) error {
	q := newConnQueue(ln.Addr())
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.h1 = append(s.h1, q)
	s.mu.Unlock()
	go proxy.Serve(q)
	sem := make(chan struct{}, maxHandshakes)
	handler := proxy.Handler()
	adapter := &h2Adapter{handler: handler, log: s.log}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("https: %w", err)
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close() // too many handshakes at once
			continue
		}
		go func() {
			defer func() { <-sem }()
			s.handshake(c, q, handler, adapter)
		}()
	}
}

func (s *TLSServer) handshake(c net.Conn, h1 *connQueue, handler fasthttp.RequestHandler, adapter *h2Adapter) {
	tc := tls.Server(c, s.tls)
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		c.Close()
		return
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case "h2":
		s.h2open.Add(1)
		go func() {
			defer s.h2open.Done()
			if s.native != nil {
				_ = s.native.ServeConn(tc, handler)
				return
			}
			s.h2.ServeConn(newBatchConn(tc, &s.bufs), &http2.ServeConnOpts{Context: s.ctx, Handler: adapter.forConn(tc), BaseConfig: s.h2srv})
		}()
	case "http/1.1", "":
		if h1.put(s.ctx, tc) != nil {
			tc.Close()
		}
	default:
		tc.Close() // acme-tls/1: the CA saw the challenge certificate
	}
}

// CloseListeners stops accepting (the proxy's Shutdown then drains the
// HTTP/1.1 connections).
func (s *TLSServer) CloseListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lns {
		ln.Close()
	}
	for _, q := range s.h1 {
		q.Close()
	}
}

// Close stops accepting and shuts the h2 connections down: GOAWAY, then
// closed when their streams end or ctx does.
func (s *TLSServer) Close(ctx context.Context) {
	s.CloseListeners()
	if s.native != nil {
		_ = s.native.Shutdown(ctx)
	}
	_ = s.h2srv.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.h2open.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.stop()
}
