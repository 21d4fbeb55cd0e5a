// Package delayproxy is a TCP proxy that adds a fixed one-way delay to each
// direction of every connection: the client's link to a Front in the
// simulated geography. Bytes keep their order (one FIFO per direction, one
// goroutine releasing it), and the queue is bounded, so a fast sender is
// slowed down rather than buffered without limit.
//
// The proxy accepts a client's connection at once, so it also charges for the
// TCP handshake a real path would have: a connection's first bytes towards
// the upstream leave no earlier than one round trip (2×delay) plus the
// one-way delay after the accept.
package delayproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// queueChunks bounds each direction's in-flight chunks (32 KiB each at most).
const queueChunks = 256

// Proxy forwards connections from its listener to Upstream.
type Proxy struct {
	ln       net.Listener
	upstream string
	delay    time.Duration
	log      *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// Start listens on listen (e.g. "127.0.0.1:0") and forwards to upstream,
// delaying each direction by oneWay (a round trip gains 2×oneWay).
func Start(listen, upstream string, oneWay time.Duration, log *slog.Logger) (*Proxy, error) {
	if oneWay < 0 {
		return nil, errors.New("delayproxy: negative delay")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("delayproxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, upstream: upstream, delay: oneWay, log: log, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for them.
func (p *Proxy) Close() error {
	p.cancel()
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

func (p *Proxy) serve(client net.Conn) {
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.untrack(client)
	d := net.Dialer{Timeout: 10 * time.Second}
	up, err := d.DialContext(p.ctx, "tcp", p.upstream)
	if err != nil {
		p.log.Warn("delayproxy: dial upstream", "upstream", p.upstream, "err", err)
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	// The handshake a real path would have cost: SYN and SYN-ACK, one round trip.
	handshakeDone := time.Now().Add(2 * p.delay)
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(client, up, handshakeDone) })
	wg.Go(func() { p.pipe(up, client, time.Time{}) })
	wg.Wait()
}

type chunk struct {
	due  time.Time
	data []byte // nil: the sender closed its side
}

// pipe copies src to dst, each chunk released delay after it was read, and
// not before sendFrom plus delay (the client could not have sent earlier).
func (p *Proxy) pipe(src, dst net.Conn, sendFrom time.Time) {
	q := make(chan chunk, queueChunks)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				sent := time.Now()
				if sent.Before(sendFrom) {
					sent = sendFrom
				}
				select {
				case q <- chunk{due: sent.Add(p.delay), data: buf[:n]}:
				case <-p.ctx.Done():
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					select {
					case q <- chunk{due: time.Now().Add(p.delay)}:
					case <-p.ctx.Done():
					}
				} else {
					dst.Close() // a reset travels on at once
				}
				return
			}
		}
	})
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				t.Stop()
			}
		}
		if p.ctx.Err() != nil {
			break
		}
		if c.data == nil {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite() // half-close: the other direction may still talk
			}
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			src.Close() // unblocks the reader
			break
		}
	}
	// Drain so the reader never blocks on a full queue after a write error.
	for range q {
	}
	wg.Wait()
}
