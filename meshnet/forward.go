package meshnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"potluck/internal/splice"
)

// FallbackDialTimeout bounds the dial of every forward target but the last:
// a target on this host answers or refuses at once, and one that is gone
// (a container's old address) must not hold a connection for DialTimeout
// before the fallback is tried.
const FallbackDialTimeout = time.Second

// Forward relays connections accepted on a tunnel port to a local TCP
// address, for the peers on its allow-list only. It is how a Back exposes a
// container on its tunnel address to the Fronts of one installation.
type Forward struct {
	node    *Node
	handler ConnHandler
	ln      net.Listener
	port    uint16
	targets atomic.Pointer[[]string]
	log     *slog.Logger
	allowed atomic.Pointer[map[netip.Addr]struct{}]

	mu     sync.Mutex
	closed bool
	conns  map[*forwardedConn]struct{}
	wg     sync.WaitGroup

	accepted, refused atomic.Uint64
}

type forwardedConn struct {
	from   netip.Addr
	client net.Conn
	server net.Conn
}

func (c *forwardedConn) close() {
	c.client.Close()
	if c.server != nil {
		c.server.Close()
	}
}

// ConnHandler serves a connection a Forward accepted from a peer on its
// allow-list, in place of relaying its bytes: a Back's HTTP gateway. It
// returns when it is done with c. The forward closes c after it, and
// earlier when the peer leaves the allow-list or the forward closes, which
// must make the handler return. dial connects to the forward's targets as
// the relay does: each in turn, the first that accepts.
type ConnHandler func(c net.Conn, dial func(context.Context) (net.Conn, error))

// Forward starts relaying tunnel port to target (host:port, normally
// 127.0.0.1:port) for connections from the allowed tunnel addresses.
func (n *Node) Forward(port uint16, target string, allowed []netip.Addr) (*Forward, error) {
	return n.ForwardTo(port, target, allowed, nil)
}

// ForwardTo is Forward with h serving each allowed connection instead of
// the byte relay (nil: the relay). The allow-list, targets and parking
// work as for Forward.
func (n *Node) ForwardTo(port uint16, target string, allowed []netip.Addr, h ConnHandler) (*Forward, error) {
	if port == 0 {
		return nil, errors.New("meshnet: forward: port is required")
	}
	if err := checkTargets([]string{target}); err != nil {
		return nil, err
	}
	ln, err := n.Listen(port)
	if err != nil {
		return nil, fmt.Errorf("meshnet: forward: %w", err)
	}
	f := &Forward{
		node:    n,
		handler: h,
		ln:      ln,
		port:    port,
		log:     n.log.With("forward", port),
		conns:   make(map[*forwardedConn]struct{}),
	}
	f.targets.Store(&[]string{target})
	f.SetAllowed(allowed)
	if err := n.track(f); err != nil {
		ln.Close()
		return nil, err
	}
	f.wg.Add(1)
	go f.acceptLoop()
	return f, nil
}

// Port is the tunnel port the forward listens on.
func (f *Forward) Port() uint16 { return f.port }

// Targets are where new connections go, tried in order.
func (f *Forward) Targets() []string { return slices.Clone(*f.targets.Load()) }

// SetTargets changes where new connections go (open ones stay where they
// are): each target (host:port) in turn, the first that accepts wins, every
// one but the last bounded by FallbackDialTimeout. A Back gives a
// container's own address first and its published port as the fallback.
func (f *Forward) SetTargets(targets ...string) error {
	if err := checkTargets(targets); err != nil {
		return err
	}
	targets = slices.Clone(targets) // the caller's slice may change
	f.targets.Store(&targets)
	return nil
}

func checkTargets(targets []string) error {
	if len(targets) == 0 {
		return errors.New("meshnet: forward: a target is required")
	}
	for _, t := range targets {
		if _, _, err := net.SplitHostPort(t); err != nil {
			return fmt.Errorf("meshnet: forward: target %q: %w", t, err)
		}
	}
	return nil
}

// Allowed lists the tunnel addresses that may connect, sorted.
func (f *Forward) Allowed() []netip.Addr {
	m := *f.allowed.Load()
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// SetAllowed replaces the allow-list. Open connections from addresses no
// longer on it are cut: a Front removed from an installation loses access now,
// not when its keep-alive connections happen to end.
func (f *Forward) SetAllowed(allowed []netip.Addr) {
	m := make(map[netip.Addr]struct{}, len(allowed))
	for _, a := range allowed {
		m[a.Unmap()] = struct{}{}
	}
	f.allowed.Store(&m)
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		if _, ok := m[c.from]; !ok {
			c.close()
		}
	}
}

// Stats returns how many connections were relayed and how many refused.
func (f *Forward) Stats() (accepted, refused uint64) {
	return f.accepted.Load(), f.refused.Load()
}

func (f *Forward) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Warn("forward stopped accepting", "err", err)
			}
			return
		}
		from := remoteAddr(c)
		if _, ok := (*f.allowed.Load())[from]; !ok {
			f.refused.Add(1)
			f.log.Debug("refused connection from a peer not on the allow-list", "from", from.String())
			c.Close()
			continue
		}
		fc := &forwardedConn{from: from, client: c}
		if !f.add(fc) {
			c.Close()
			return
		}
		f.accepted.Add(1)
		f.wg.Add(1)
		go f.relay(fc)
	}
}

func (f *Forward) add(c *forwardedConn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Forward) relay(c *forwardedConn) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.close()
	}()
	if f.handler != nil {
		f.handler(c.client, f.dial)
		return
	}
	server, err := f.dial(context.Background())
	if err != nil {
		f.log.Warn("forward target unreachable", "err", err)
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		server.Close()
		return
	}
	c.server = server
	f.mu.Unlock()
	splice.Conns(c.client, server)
}

// dial connects to the first target that accepts.
func (f *Forward) dial(parent context.Context) (net.Conn, error) {
	targets := *f.targets.Load()
	var errs []error
	for i, t := range targets {
		timeout := f.node.cfg.DialTimeout
		if i < len(targets)-1 {
			timeout = min(timeout, FallbackDialTimeout)
		}
		ctx, cancel := context.WithTimeout(parent, timeout)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", t)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func remoteAddr(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			return ip.Unmap()
		}
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// Close stops the forward and cuts its open connections.
func (f *Forward) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	for c := range f.conns {
		c.close()
	}
	f.mu.Unlock()
	err := f.ln.Close()
	f.wg.Wait()
	f.node.untrack(f)
	return err
}
