package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"potluck/agentproto"
	"potluck/core/agentapi"
	"potluck/core/api"
	"potluck/core/fsm"
	"potluck/internal/jsonhttp"
	"potluck/meshnet"
)

// MeshConfig makes the core node a mesh hub: every host peers with it, and
// it serves the agent API on its tunnel address.
type MeshConfig struct {
	KeyFile        string              // WireGuard private key (0600), created if missing
	PrivateKey     *meshnet.PrivateKey // instead of KeyFile (tests)
	TunnelAddr     netip.Addr          // zero: 100.64.0.N, N = position of the node id in the sorted peer list
	ListenPort     uint16              // WireGuard UDP port; 0 = any free port
	PublicEndpoint string              // host:port hosts send WireGuard packets to; default 127.0.0.1:<port>
	AgentPort      uint16              // agent API TCP port on the tunnel address; 0 = 7400
	ProbePort      uint16              // port agents answer GET /healthz on; 0 = 7401
	Bind           conn.Bind           // nil = real UDP sockets
	// DecommissionGrace keeps a decommissioned host as a peer this long, so
	// its agent can still learn (410 Gone) that it must stand down; its key
	// is refused by the agent API meanwhile. 0 = 2 minutes.
	DecommissionGrace time.Duration
}

// Default ports on tunnel addresses.
const (
	DefaultAgentPort = 7400
	DefaultProbePort = 7401
)

// meshFlushGrace is how long a stopping node keeps its tunnel up after the
// agent API's last answer.
const meshFlushGrace = 100 * time.Millisecond

type meshRuntime struct {
	s      *Server
	cfg    MeshConfig
	node   *meshnet.Node
	prober *tunnelProber
	agent  *http.Server
}

func newMesh(s *Server, cfg MeshConfig) (*meshRuntime, error) {
	if cfg.AgentPort == 0 {
		cfg.AgentPort = DefaultAgentPort
	}
	if cfg.ProbePort == 0 {
		cfg.ProbePort = DefaultProbePort
	}
	if cfg.DecommissionGrace == 0 {
		cfg.DecommissionGrace = 2 * time.Minute
	}
	if !cfg.TunnelAddr.IsValid() {
		if s.cfg.JoinURL != "" {
			return nil, errors.New("mesh: a joining node needs an explicit tunnel address (100.64.0.N, unused by the other core nodes)")
		}
		cfg.TunnelAddr = tunnelAddrFor(s.cfg.NodeID, s.cfg.Peers)
	}
	var key meshnet.PrivateKey
	switch {
	case cfg.PrivateKey != nil:
		key = *cfg.PrivateKey
	case cfg.KeyFile != "":
		k, err := meshnet.LoadOrCreatePrivateKey(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mesh key: %w", err)
		}
		key = k
	default:
		return nil, errors.New("mesh: a key file is required")
	}
	node, err := meshnet.New(meshnet.Config{
		PrivateKey: key, Address: cfg.TunnelAddr, ListenPort: cfg.ListenPort, Bind: cfg.Bind,
		Logger: s.log.With("component", "mesh"),
	})
	if err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	if cfg.PublicEndpoint == "" {
		cfg.PublicEndpoint = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), node.ListenPort()).String()
	}
	m := &meshRuntime{s: s, cfg: cfg, node: node}
	m.prober = &tunnelProber{node: node, port: cfg.ProbePort}
	return m, nil
}

func (m *meshRuntime) publicKey() string { return m.node.PublicKey().String() }

// start serves the agent API on the tunnel and keeps mesh peers in sync with
// the registered hosts.
func (m *meshRuntime) start(ctx context.Context) error {
	ln, err := m.node.Listen(m.cfg.AgentPort)
	if err != nil {
		return fmt.Errorf("mesh: agent API listen: %w", err)
	}
	h := agentapi.New(agentapi.Config{
		State: m.s.Node.FSM, Blobs: m.s.Blobs, Logger: m.s.log,
		Identify:  m.identify,
		Heartbeat: m.s.deliverHeartbeat,
		Metrics:   m.s.deliverMetrics,
		Certs:     m.s.certStore(),
		Context:   ctx,
	})
	m.agent = &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		// Requests end with the node: a blocking query answers 503 at
		// once, so its agent asks another node instead of waiting on one
		// that is gone.
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	m.s.goRun(func() {
		if err := m.agent.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.s.log.Warn("agent API", "err", err)
		}
	})
	m.s.goRun(func() { m.syncPeersLoop(ctx) })
	return nil
}

func (m *meshRuntime) identify(r *http.Request) (string, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return "", false
	}
	p, ok := m.node.PeerByAddress(ap.Addr().Unmap())
	if !ok {
		return "", false
	}
	return p.PublicKey.String(), true
}

func (m *meshRuntime) close() {
	if m.agent != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := m.agent.Shutdown(ctx); err != nil {
			_ = m.agent.Close()
		}
		// The last answers and FINs are queued in the tunnel's TCP stack;
		// let them leave before the device goes.
		time.Sleep(meshFlushGrace)
	}
	_ = m.node.Close()
}

// desiredPeers: the other core nodes, and every host that is not
// decommissioned (or was decommissioned less than the grace ago). inGrace
// reports whether a decommissioned host is still kept, so the caller
// re-checks soon. A peer that cannot be configured (a key or address
// already taken, this node's own, unparsable) is left out and named in
// skipped, so one bad registration never stops the rest of the mesh.
// Core nodes come first: a host can never take a core node's place.
func (m *meshRuntime) desiredPeers(st *fsm.State, now time.Time) (out []meshnet.Peer, skipped []string, inGrace bool) {
	keys := map[meshnet.PublicKey]string{m.node.PublicKey(): "this core node"}
	addrs := map[netip.Addr]string{m.cfg.TunnelAddr: "this core node"}
	add := func(who, key string, addr netip.Addr, endpoint string) {
		k, err := meshnet.ParsePublicKey(key)
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s: public key: %v", who, err))
		case !addr.IsValid():
			skipped = append(skipped, who+": no tunnel address")
		case keys[k] != "":
			skipped = append(skipped, fmt.Sprintf("%s: public key already used by %s", who, keys[k]))
		case addrs[addr] != "":
			skipped = append(skipped, fmt.Sprintf("%s: tunnel address %s already used by %s", who, addr, addrs[addr]))
		default:
			keys[k], addrs[addr] = who, who
			p := meshnet.Peer{PublicKey: k, Address: addr}
			if ep, err := netip.ParseAddrPort(endpoint); err == nil {
				p.Endpoint = ep
			}
			out = append(out, p)
		}
	}
	for _, c := range st.SortedCoreNodes() {
		if c.ID == m.s.cfg.NodeID || c.PublicKey == "" || !c.TunnelAddr.IsValid() {
			continue
		}
		add("core node "+c.ID, c.PublicKey, c.TunnelAddr, c.MeshEndpoint)
	}
	for _, h := range st.SortedHosts() {
		if h.Status == fsm.HostDecommissioned {
			if now.Sub(h.UpdatedAt) >= m.cfg.DecommissionGrace {
				continue
			}
			inGrace = true
		}
		endpoint := ""
		if h.Role == fsm.RoleFront {
			endpoint = h.Endpoint
		}
		add(fmt.Sprintf("host %s (%s)", h.Name, h.ID), h.PublicKey, h.TunnelAddr, endpoint)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address.Less(out[j].Address) })
	return out, skipped, inGrace
}

func (m *meshRuntime) syncPeersLoop(ctx context.Context) {
	var index uint64
	var reported string // the skipped peers last logged, so each change is logged once
	wait := 30 * time.Second
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, wait)
		st := m.s.Node.FSM.Wait(wctx, index)
		cancel()
		peers, skipped, inGrace := m.desiredPeers(st, time.Now())
		if now := strings.Join(skipped, "; "); now != reported {
			if now != "" {
				m.s.log.Warn("mesh peers skipped", "peers", skipped)
			} else {
				m.s.log.Info("mesh peers: none skipped any more")
			}
			reported = now
		}
		wait = 30 * time.Second
		if inGrace {
			wait = time.Second // drop the host soon after its grace ends
		}
		if err := m.node.SetPeers(peers); err != nil {
			m.s.log.Warn("mesh peers", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		index = st.Index
	}
}

// tunnelProber checks a host by GET http://<tunnel address>:<probe port>/healthz
// through the mesh.
type tunnelProber struct {
	node *meshnet.Node
	port uint16
}

func (p *tunnelProber) Probe(ctx context.Context, h *fsm.Host) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.node.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
	url := fmt.Sprintf("http://%s/healthz", netip.AddrPortFrom(h.TunnelAddr, p.port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("probe %s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}

// deliverHeartbeat hands an agent's heartbeat to the leader: directly when
// this node leads, otherwise through our API, which forwards it.
func (s *Server) deliverHeartbeat(ctx context.Context, hostID string, reports []agentproto.InstanceReport) error {
	if s.Node.IsLeader() {
		return s.Reconciler.Heartbeat(ctx, hostID, reports)
	}
	return s.postJSON(ctx, s.url+"/v1/internal/heartbeat", map[string]any{"host_id": hostID, "instances": reports})
}

// deliverMetrics hands an agent's metrics report to the leader, like
// deliverHeartbeat.
func (s *Server) deliverMetrics(ctx context.Context, hostID string, m agentproto.MetricsReport) error {
	if s.Node.IsLeader() {
		return s.Scaler.Report(ctx, hostID, m)
	}
	return s.postJSON(ctx, s.url+"/v1/internal/metrics", api.MetricsRequest{HostID: hostID, Report: m})
}

// logs opens an instance's log on its Back: GET agentproto.PathLogs on the
// Back's probe port through the mesh (the Back serves it to core nodes only).
func (m *meshRuntime) logs(ctx context.Context, h *fsm.Host, instance string, q url.Values) (io.ReadCloser, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return m.node.DialContext(ctx, network, addr)
		},
		ResponseHeaderTimeout: 10 * time.Second,
		DisableKeepAlives:     true,
	}}
	u := fmt.Sprintf("http://%s%s%s?%s", netip.AddrPortFrom(h.TunnelAddr, m.cfg.ProbePort), agentproto.PathLogs, url.PathEscape(instance), q.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, jsonhttp.ReadError(resp)
	}
	return resp.Body, nil
}
