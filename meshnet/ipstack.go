package meshnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// dataPath selects how packets move between WireGuard and the node's TCP/IP
// stack. Only benchmarks choose; nodes always use pathOffload.
type dataPath int

const (
	// pathOffload: batches of up to 128 packets each way, segmentation
	// and receive offload for TCP, TCP buffers tuned for throughput.
	pathOffload dataPath = iota
	// pathBatched: the same link without offload and with gVisor's default
	// TCP buffers, to show what the offload adds.
	pathBatched
	// pathStock: wireguard-go's tun/netstack, one packet per hand-off,
	// which meshnet used before; kept to measure against.
	pathStock
)

// TCP buffer limits of the tuned stack. gVisor grows a connection's send
// buffer with its congestion window and, with receive buffer moderation on,
// its receive buffer with what the application reads per round trip, both
// from 1 MiB up to these maxima; idle and slow connections stay small.
// 8 MiB carries 400 MB/s at a 20 ms round trip; gVisor's default maximum of
// 4 MiB would cap such a path at half that.
const (
	tcpReceiveBufferMax = 8 << 20
	tcpSendBufferMax    = 8 << 20
)

// ipStack is the node's userspace TCP/IP stack as the node uses it.
type ipStack interface {
	dial(ctx context.Context, network string, to netip.AddrPort) (net.Conn, error)
	listenTCP(at netip.AddrPort) (net.Listener, error)
}

// newIPStack creates the TUN device WireGuard reads and writes and the stack
// behind it, with addr as the only local address.
func newIPStack(addr netip.Addr, mtu int, keepalive time.Duration, path dataPath) (tun.Device, ipStack, error) {
	if path == pathStock {
		dev, tnet, err := netstack.CreateNetTUN([]netip.Addr{addr}, nil, mtu)
		if err != nil {
			return nil, nil, err
		}
		return dev, stockStack{tnet}, nil
	}

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        true,
	})
	link := newTUNLink(mtu, path == pathOffload, s)
	opts := []tcpip.SettableTransportProtocolOption{
		// Off by default in gVisor; without it one lost packet in a
		// window costs a round trip per loss.
		new(tcpip.TCPSACKEnabled(true)),
	}
	if path == pathOffload {
		opts = append(opts,
			new(tcpip.TCPModerateReceiveBufferOption(true)),
			&tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: tcpReceiveBufferMax},
			&tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: tcpSendBufferMax},
		)
	}
	for _, o := range opts {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			s.Close()
			return nil, nil, fmt.Errorf("set TCP option %T: %s", o, err)
		}
	}
	if err := s.CreateNIC(nicID, (*linkEndpoint)(link)); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("create NIC: %s", err)
	}
	proto, empty := ipv4.ProtocolNumber, header.IPv4EmptySubnet
	if addr.Is6() {
		proto, empty = ipv6.ProtocolNumber, header.IPv6EmptySubnet
	}
	pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(addr.AsSlice()).WithPrefix()}
	if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("add address %s: %s", addr, err)
	}
	s.AddRoute(tcpip.Route{Destination: empty, NIC: nicID})
	return link, userStack{s: s, keepalive: keepalive}, nil
}

// nicID is the one NIC of a node's stack.
const nicID tcpip.NICID = 1

// userStack is a gVisor stack behind a tunLink.
type userStack struct {
	s         *stack.Stack
	keepalive time.Duration // idle time before a dialed connection is probed
}

func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	proto := ipv4.ProtocolNumber
	if ap.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}, proto
}

func (u userStack) dial(ctx context.Context, network string, to netip.AddrPort) (net.Conn, error) {
	fa, proto := fullAddr(to)
	switch network {
	case "tcp", "tcp4", "tcp6":
		return u.dialTCP(ctx, fa, proto)
	case "udp", "udp4", "udp6":
		c, err := gonet.DialUDP(u.s, nil, &fa, proto)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("network %q: only tcp and udp", network)
}

// dialTCP is gonet.DialContextTCP with keepalive probes switched on.
func (u userStack) dialTCP(ctx context.Context, to tcpip.FullAddress, proto tcpip.NetworkProtocolNumber) (net.Conn, error) {
	var wq waiter.Queue
	ep, tcpErr := u.s.NewEndpoint(tcp.ProtocolNumber, proto, &wq)
	if tcpErr != nil {
		return nil, errors.New(tcpErr.String())
	}
	entry, writable := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	tcpErr = ep.Connect(to)
	if _, started := tcpErr.(*tcpip.ErrConnectStarted); started {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		case <-writable:
		}
		tcpErr = ep.LastError()
	}
	if tcpErr != nil {
		ep.Close()
		return nil, &net.OpError{Op: "connect", Net: "tcp", Addr: &net.TCPAddr{IP: net.IP(to.Addr.AsSlice()), Port: int(to.Port)}, Err: errors.New(tcpErr.String())}
	}
	// Set once connected: gVisor arms the timer only on an established
	// connection.
	if err := setKeepalive(ep, u.keepalive); err != nil {
		ep.Close()
		return nil, err
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

func setKeepalive(ep tcpip.Endpoint, idle time.Duration) error {
	ep.SocketOptions().SetKeepAlive(true)
	idleOpt, intervalOpt := tcpip.KeepaliveIdleOption(idle), tcpip.KeepaliveIntervalOption(idle/2)
	for _, err := range []tcpip.Error{ep.SetSockOpt(&idleOpt), ep.SetSockOpt(&intervalOpt), ep.SetSockOptInt(tcpip.KeepaliveCountOption, 3)} {
		if err != nil {
			return fmt.Errorf("TCP keepalive: %s", err)
		}
	}
	return nil
}

func (u userStack) listenTCP(at netip.AddrPort) (net.Listener, error) {
	fa, proto := fullAddr(at)
	ln, err := gonet.ListenTCP(u.s, fa, proto)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// stockStack is wireguard-go's netstack.
type stockStack struct{ n *netstack.Net }

func (s stockStack) dial(ctx context.Context, network string, to netip.AddrPort) (net.Conn, error) {
	return s.n.DialContext(ctx, network, to.String())
}

func (s stockStack) listenTCP(at netip.AddrPort) (net.Listener, error) {
	ln, err := s.n.ListenTCPAddrPort(at)
	if err != nil {
		return nil, err
	}
	return ln, nil
}
