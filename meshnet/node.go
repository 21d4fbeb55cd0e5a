package meshnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Defaults for Config fields left zero.
const (
	DefaultMTU = device.DefaultMTU // 1420: room for WireGuard over IPv6 on a 1500-byte path
	// maxMTU keeps a tunnel packet plus WireGuard's 32 bytes of header and
	// tag within the largest UDP payload over IPv4 (65,507 bytes). Above it
	// full-sized packets cannot be sent: with MTU 65,535 a stream through
	// wireguard-go's own netstack stalled (TestBulkTransferIntact covers maxMTU).
	maxMTU               = 65507 - device.MessageTransportSize
	DefaultDialTimeout   = 5 * time.Second
	DefaultProbeInterval = 5 * time.Second
	// HubKeepalive is the persistent keepalive toward hubs; 25 s keeps a
	// NAT's UDP mapping alive with margin (Linux conntrack idles out at 30 s).
	HubKeepalive = 25 * time.Second
	// DefaultTCPKeepalive: a connection to a peer that died ends within
	// 10 s + 3 × 5 s of silence; one to a peer that restarted, at the first
	// probe (the new stack resets it).
	DefaultTCPKeepalive = 10 * time.Second
)

// ErrClosed is returned by every operation on a closed Node.
var ErrClosed = errors.New("meshnet: node closed")

// ErrNoPeer is returned by a dial to a tunnel address no peer owns. Without
// this check such a dial would hang until its deadline: WireGuard silently
// drops packets no peer's allowed IPs cover.
var ErrNoPeer = errors.New("no peer has this tunnel address")

// Config describes one mesh node.
type Config struct {
	PrivateKey PrivateKey
	// Address is this node's tunnel address, e.g. 100.64.0.7.
	Address netip.Addr
	// ListenPort is the UDP port WireGuard listens on; 0 picks a free one
	// (read it back with Node.ListenPort).
	ListenPort uint16
	// MTU of the tunnel interface; 0 means DefaultMTU, which fits a
	// 1500-byte Internet path. A larger MTU saves CPU per byte but is safe
	// only where every hop carries the larger UDP datagrams whole (one host,
	// a jumbo-frame LAN); elsewhere they are IP-fragmented. Give all nodes
	// of a mesh the same MTU.
	MTU int
	// Bind carries WireGuard's UDP packets; nil means real UDP sockets.
	// Tests and benchmarks pass a WANBind here.
	Bind conn.Bind
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// DialTimeout bounds DialContext when the context has no deadline.
	DialTimeout time.Duration
	// ProbeInterval is how often hub peers are actively probed.
	ProbeInterval time.Duration
	// TCPKeepalive is how long a TCP connection dialed over the tunnel
	// may be silent before it is probed; probes follow every half of it
	// and three unanswered ones end the connection. A peer that dies never
	// resets its connections, so without probes a read from it would wait
	// for its own timeout. 0 means DefaultTCPKeepalive.
	TCPKeepalive time.Duration

	// dataPath lets benchmarks compare the data path with older designs.
	dataPath dataPath
}

// Peer is another node as this node sees it.
type Peer struct {
	PublicKey PublicKey `json:"public_key"`
	// Address is the peer's tunnel address; it becomes the peer's only
	// allowed IP, so packets from it are authentic and packets to it go to it.
	Address netip.Addr `json:"address"`
	// Endpoint is the peer's UDP address. Zero means "learn it from the
	// peer's packets", which is how a hub knows a NATed host.
	Endpoint netip.AddrPort `json:"endpoint,omitzero"`
	// Hub marks a peer this node initiates to and keeps reachable: a
	// persistent keepalive and an active probe. NATed hosts set it for the
	// core nodes and Fronts they talk to.
	Hub bool `json:"hub,omitempty"`
}

// PeerStatus is a peer's live state as WireGuard reports it.
type PeerStatus struct {
	Peer
	// CurrentEndpoint is where packets go now: configured, or learned.
	CurrentEndpoint netip.AddrPort `json:"current_endpoint,omitzero"`
	// LastHandshake is zero when no handshake has completed yet.
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
}

// Node is one WireGuard device over a userspace network stack.
type Node struct {
	cfg        Config
	log        *slog.Logger
	publicKey  PublicKey
	listenPort uint16
	dev        *device.Device
	tun        tun.Device // what WireGuard reads and writes: a *tunLink but on pathStock
	ipstack    ipStack

	mu        sync.Mutex // guards the fields below and serialises device changes
	closed    bool
	peers     map[PublicKey]Peer
	byAddress map[netip.Addr]PublicKey
	closers   map[closer]struct{}
	awaiting  map[PublicKey]*newPeer // new peers whose first handshake is awaited (handshake.go)
	awaitWake chan struct{}          // capacity 1: a peer was added to awaiting

	stop     context.CancelFunc
	probeCtx context.Context
	wg       sync.WaitGroup
}

// closer is anything the node shuts down with itself: listeners, forwards.
type closer interface{ Close() error }

// New creates and starts a node.
func New(cfg Config) (*Node, error) {
	if cfg.PrivateKey.IsZero() {
		return nil, errors.New("meshnet: config: PrivateKey is required")
	}
	if !cfg.Address.IsValid() || cfg.Address.IsUnspecified() {
		return nil, fmt.Errorf("meshnet: config: Address %q is not a usable tunnel address", cfg.Address)
	}
	cfg.Address = cfg.Address.Unmap()
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.MTU < 576 || cfg.MTU > maxMTU {
		return nil, fmt.Errorf("meshnet: config: MTU %d out of range 576..%d", cfg.MTU, maxMTU)
	}
	if cfg.Address.Is6() && cfg.MTU < 1280 {
		return nil, fmt.Errorf("meshnet: config: MTU %d below IPv6's minimum 1280", cfg.MTU)
	}
	if cfg.DialTimeout < 0 || cfg.ProbeInterval < 0 {
		return nil, errors.New("meshnet: config: DialTimeout and ProbeInterval must not be negative")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ProbeInterval == 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Bind == nil {
		cfg.Bind = newUDPBind()
	}

	if cfg.TCPKeepalive <= 0 {
		cfg.TCPKeepalive = DefaultTCPKeepalive
	}
	tdev, ipstack, err := newIPStack(cfg.Address, cfg.MTU, cfg.TCPKeepalive, cfg.dataPath)
	if err != nil {
		return nil, fmt.Errorf("meshnet: create netstack: %w", err)
	}
	log := cfg.Logger.With("tunnel", cfg.Address.String())
	dev := device.NewDevice(tdev, cfg.Bind, deviceLogger(log))
	n := &Node{
		cfg:       cfg,
		log:       log,
		publicKey: cfg.PrivateKey.Public(),
		dev:       dev,
		tun:       tdev,
		ipstack:   ipstack,
		peers:     make(map[PublicKey]Peer),
		byAddress: make(map[netip.Addr]PublicKey),
		closers:   make(map[closer]struct{}),
		awaiting:  make(map[PublicKey]*newPeer),
		awaitWake: make(chan struct{}, 1),
	}
	uapi := "private_key=" + cfg.PrivateKey.hex() + "\nlisten_port=" + strconv.Itoa(int(cfg.ListenPort)) + "\n"
	if err := dev.IpcSet(uapi); err != nil {
		dev.Close()
		return nil, fmt.Errorf("meshnet: configure device (listen port %d): %w", cfg.ListenPort, err)
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("meshnet: bring device up (listen port %d): %w", cfg.ListenPort, err)
	}
	port, err := n.readListenPort()
	if err != nil {
		dev.Close()
		return nil, err
	}
	n.listenPort = port
	n.probeCtx, n.stop = context.WithCancel(context.Background())
	n.wg.Add(2)
	go n.probeHubs()
	go n.watchFirstHandshakes()
	log.Debug("mesh node up", "listen_port", port, "public_key", n.publicKey.String())

	return n, nil
}

// deviceLogger routes wireguard-go's logs into slog. Its verbose lines are
// formatted only when debug logging is on, since they are per-packet chatty.
func deviceLogger(log *slog.Logger) *device.Logger {
	l := &device.Logger{Verbosef: device.DiscardLogf, Errorf: func(format string, args ...any) {
		log.Warn("wireguard: " + fmt.Sprintf(format, args...))
	}}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		l.Verbosef = func(format string, args ...any) { log.Debug("wireguard: " + fmt.Sprintf(format, args...)) }
	}
	return l
}

func (n *Node) readListenPort() (uint16, error) {
	conf, err := n.dev.IpcGet()
	if err != nil {
		return 0, fmt.Errorf("meshnet: read device state: %w", err)
	}
	for line := range strings.SplitSeq(conf, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return 0, fmt.Errorf("meshnet: device reported listen port %q: %w", v, err)
			}
			return uint16(p), nil
		}
	}
	return 0, errors.New("meshnet: device reported no listen port")
}

// Address is the node's tunnel address.
func (n *Node) Address() netip.Addr { return n.cfg.Address }

// PublicKey is the node's public key.
func (n *Node) PublicKey() PublicKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.publicKey
}

// SetPrivateKey rotates the node's static key without a restart. Every
// session re-handshakes; peers reach the node again once they know the new
// public key (UpsertPeer with the same address replaces the old one).
func (n *Node) SetPrivateKey(k PrivateKey) error {
	if k.IsZero() {
		return errors.New("meshnet: set private key: key is zero")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	pub := k.Public()
	if _, isPeer := n.peers[pub]; isPeer {
		return fmt.Errorf("meshnet: set private key: %s is a peer's key", pub)
	}
	if err := n.dev.IpcSet("private_key=" + k.hex() + "\n"); err != nil {
		return fmt.Errorf("meshnet: set private key: %w", err)
	}
	n.publicKey = pub
	return nil
}

// ListenPort is the UDP port WireGuard listens on.
func (n *Node) ListenPort() uint16 { return n.listenPort }

// validatePeer checks one peer on its own.
func (n *Node) validatePeer(p Peer) error {
	switch {
	case p.PublicKey.IsZero():
		return errors.New("peer: public key is required")
	case p.PublicKey == n.PublicKey():
		return fmt.Errorf("peer %s: that is this node's own key", p.PublicKey)
	case !p.Address.IsValid() || p.Address.IsUnspecified():
		return fmt.Errorf("peer %s: tunnel address %q is not usable", p.PublicKey, p.Address)
	case p.Address.Unmap() == n.cfg.Address:
		return fmt.Errorf("peer %s: tunnel address %s is this node's own", p.PublicKey, p.Address)
	case p.Endpoint.IsValid() && (p.Endpoint.Port() == 0 || p.Endpoint.Addr().IsUnspecified()):
		return fmt.Errorf("peer %s: endpoint %s needs an address and a port", p.PublicKey, p.Endpoint)
	case p.Hub && !p.Endpoint.IsValid():
		return fmt.Errorf("peer %s: a hub needs an endpoint to initiate to", p.PublicKey)
	}
	return nil
}

func normalise(p Peer) Peer {
	p.Address = p.Address.Unmap()
	if p.Endpoint.IsValid() {
		p.Endpoint = netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
	}
	return p
}

// SetPeers makes the node's peers exactly peers, applied as a diff: peers
// that did not change keep their sessions; nothing is replaced wholesale.
// The list is validated first, so an invalid list changes nothing.
func (n *Node) SetPeers(peers []Peer) error {
	want := make(map[PublicKey]Peer, len(peers))
	addrs := make(map[netip.Addr]PublicKey, len(peers))
	for _, p := range peers {
		if err := n.validatePeer(p); err != nil {
			return fmt.Errorf("meshnet: set peers: %w", err)
		}
		p = normalise(p)
		if _, dup := want[p.PublicKey]; dup {
			return fmt.Errorf("meshnet: set peers: peer %s listed twice", p.PublicKey)
		}
		if other, dup := addrs[p.Address]; dup {
			return fmt.Errorf("meshnet: set peers: peers %s and %s share tunnel address %s", other, p.PublicKey, p.Address)
		}
		want[p.PublicKey] = p
		addrs[p.Address] = p.PublicKey
	}

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	// Removals first, so an address moving to a new key (a key rotation)
	// is free before the new peer claims it.
	var b strings.Builder
	for k := range n.peers {
		if _, keep := want[k]; !keep {
			writeRemove(&b, k)
		}
	}
	for _, p := range sortedPeers(want) {
		if old, ok := n.peers[p.PublicKey]; !ok || old != p {
			writePeer(&b, p, ok && old.Address != p.Address)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := n.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("meshnet: set peers: %w", err)
	}
	now := time.Now()
	for k, p := range want {
		if _, existed := n.peers[k]; !existed {
			n.awaitHandshake(p, now)
		}
	}
	n.peers = want
	n.byAddress = addrs
	return nil
}

// UpsertPeer adds a peer or updates it in place. A different peer holding
// the same tunnel address is removed: an address belongs to one key, and this
// is how a host's key rotation reaches the mesh.
func (n *Node) UpsertPeer(p Peer) error {
	if err := n.validatePeer(p); err != nil {
		return fmt.Errorf("meshnet: upsert peer: %w", err)
	}
	p = normalise(p)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	old, existed := n.peers[p.PublicKey]
	if existed && old == p {
		return nil
	}
	var b strings.Builder
	other, taken := n.byAddress[p.Address]
	if taken && other != p.PublicKey {
		writeRemove(&b, other)
	}
	writePeer(&b, p, existed && old.Address != p.Address)
	if err := n.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("meshnet: upsert peer %s: %w", p.PublicKey, err)
	}
	if taken && other != p.PublicKey {
		delete(n.peers, other)
	}
	if existed {
		delete(n.byAddress, old.Address)
	}
	n.peers[p.PublicKey] = p
	n.byAddress[p.Address] = p.PublicKey
	if !existed {
		n.awaitHandshake(p, time.Now())
	}
	return nil
}

// RemovePeer removes a peer; its sessions end at once.
func (n *Node) RemovePeer(k PublicKey) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	p, ok := n.peers[k]
	if !ok {
		return fmt.Errorf("meshnet: remove peer %s: not a peer", k)
	}
	var b strings.Builder
	writeRemove(&b, k)
	if err := n.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("meshnet: remove peer %s: %w", k, err)
	}
	delete(n.peers, k)
	delete(n.byAddress, p.Address)
	return nil
}

// writePeer appends the UAPI section that creates or updates p. Lines only,
// never a blank one: a blank line silently ends the whole UAPI operation.
func writePeer(b *strings.Builder, p Peer, replaceAllowedIPs bool) {
	b.WriteString("public_key=" + p.PublicKey.Hex() + "\n")
	if p.Endpoint.IsValid() {
		b.WriteString("endpoint=" + p.Endpoint.String() + "\n")
	}
	keepalive := 0
	if p.Hub {
		keepalive = int(HubKeepalive / time.Second)
	}
	b.WriteString("persistent_keepalive_interval=" + strconv.Itoa(keepalive) + "\n")
	if replaceAllowedIPs {
		b.WriteString("replace_allowed_ips=true\n")
	}
	b.WriteString("allowed_ip=" + netip.PrefixFrom(p.Address, p.Address.BitLen()).String() + "\n")
}

func writeRemove(b *strings.Builder, k PublicKey) {
	b.WriteString("public_key=" + k.Hex() + "\nremove=true\n")
}

func sortedPeers(m map[PublicKey]Peer) []Peer {
	out := make([]Peer, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return a.Address.Compare(b.Address) })
	return out
}

// Peers lists the configured peers, ordered by tunnel address.
func (n *Node) Peers() []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return sortedPeers(n.peers)
}

// PeerByAddress tells which peer owns a tunnel address. For the source
// address of a connection accepted on the tunnel this is authentic: WireGuard
// only accepts packets from a peer whose allowed IPs cover their source.
func (n *Node) PeerByAddress(a netip.Addr) (Peer, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	k, ok := n.byAddress[a.Unmap()]
	if !ok {
		return Peer{}, false
	}
	return n.peers[k], true
}

// TunnelBytes counts the bytes of the IP packets the node has sent and
// received through the tunnel, all peers together: a cheap gauge of how
// much the node moves (one atomic load; Status takes WireGuard's IPC lock).
// It stays 0 on the stock netstack path, which only benchmarks use.
func (n *Node) TunnelBytes() uint64 {
	if l, ok := n.tun.(*tunLink); ok {
		return l.bytes.Load()
	}
	return 0
}

// Status reports each peer's live WireGuard state, ordered by tunnel address.
func (n *Node) Status() ([]PeerStatus, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	peers := sortedPeers(n.peers)
	n.mu.Unlock()

	conf, err := n.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("meshnet: status: %w", err)
	}
	live, err := parseStatus(conf)
	if err != nil {
		return nil, fmt.Errorf("meshnet: status: %w", err)
	}
	out := make([]PeerStatus, 0, len(peers))
	for _, p := range peers {
		s := live[p.PublicKey]
		s.Peer = p
		out = append(out, s)
	}
	return out, nil
}

// parseStatus reads the peer sections of a UAPI get response.
func parseStatus(conf string) (map[PublicKey]PeerStatus, error) {
	out := make(map[PublicKey]PeerStatus)
	var cur *PeerStatus
	var key PublicKey
	var sec, nsec int64
	flush := func() {
		if cur != nil {
			if sec != 0 || nsec != 0 {
				cur.LastHandshake = time.Unix(sec, nsec)
			}
			out[key] = *cur
		}
	}
	for line := range strings.SplitSeq(conf, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if k == "public_key" {
			flush()
			b, err := decodeHexKey(v)
			if err != nil {
				return nil, err
			}
			key, cur, sec, nsec = PublicKey(b), &PeerStatus{}, 0, 0
			continue
		}
		if cur == nil {
			continue // device-level line
		}
		var err error
		switch k {
		case "endpoint":
			cur.CurrentEndpoint, err = netip.ParseAddrPort(v)
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			cur.RxBytes, err = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			cur.TxBytes, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s=%q: %w", k, v, err)
		}
	}
	flush()
	return out, nil
}

// DialContext connects to address ("tcp" or "udp", host an IP literal) over
// the tunnel. A context without a deadline gets Config.DialTimeout, since a
// dial to a peer that is down never gets a reset and would otherwise hang.
func (n *Node) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("meshnet: dial %s: address must be tunnel-ip:port: %w", address, err)
	}
	if err := n.checkRoute(ap.Addr()); err != nil {
		return nil, fmt.Errorf("meshnet: dial %s: %w", address, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.DialTimeout)
		defer cancel()
	}
	c, err := n.ipstack.dial(ctx, network, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	if err != nil {
		return nil, fmt.Errorf("meshnet: dial %s: %w", address, err)
	}
	return c, nil
}

// checkRoute fails fast for an address that no peer (nor this node) owns.
func (n *Node) checkRoute(a netip.Addr) error {
	a = a.Unmap()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if a == n.cfg.Address {
		return nil
	}
	if _, ok := n.byAddress[a]; !ok {
		return fmt.Errorf("%s: %w", a, ErrNoPeer)
	}
	return nil
}

// Listen accepts TCP connections on port of the node's tunnel address. The
// listener closes with the node.
func (n *Node) Listen(port uint16) (net.Listener, error) {
	ln, err := n.ipstack.listenTCP(netip.AddrPortFrom(n.cfg.Address, port))
	if err != nil {
		return nil, fmt.Errorf("meshnet: listen on %s:%d: %w", n.cfg.Address, port, err)
	}
	l := &listener{Listener: ln, node: n, closed: make(chan struct{})}
	if err := n.track(l); err != nil {
		ln.Close()
		return nil, err
	}
	return l, nil
}

// listener reports net.ErrClosed after Close, which gVisor's listener does
// not, so accept loops and http.Server end cleanly.
type listener struct {
	net.Listener
	node      *Node
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.closed:
			return nil, net.ErrClosed
		default:
		}
		return nil, err
	}
	return c, nil
}

func (l *listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
		l.node.untrack(l)
	})
	return err
}

func (n *Node) track(c closer) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.closers[c] = struct{}{}
	return nil
}

func (n *Node) untrack(c closer) {
	n.mu.Lock()
	delete(n.closers, c)
	n.mu.Unlock()
}

// Close shuts the node down: forwards, listeners, the probe loop and the
// device, with every goroutine and socket they own. A second Close returns
// ErrClosed.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	n.closed = true
	closers := make([]closer, 0, len(n.closers))
	for c := range n.closers {
		closers = append(closers, c)
	}
	n.mu.Unlock()

	n.stop()
	for _, c := range closers {
		c.Close()
	}
	n.wg.Wait()
	n.dev.Close() // also closes the netstack TUN
	return nil
}
