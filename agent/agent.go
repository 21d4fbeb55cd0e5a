// Package agent is the host agent runtime that a Front and a Back have in
// common, the last hop of the write path: the host's identity (its WireGuard
// key never leaves its data directory), registration with the core, the
// host's mesh node, following its desired state from the core's agent API
// over the tunnel (with failover between core nodes and the last known state
// kept on disk, so a host restarted while the core is away serves what it
// served before), and heartbeats. It speaks agentproto and imports nothing
// of the core.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"potluck/agentproto"
	"potluck/meshnet"
)

// Config describes a host agent.
type Config struct {
	// CoreURLs are the core nodes' public API base URLs, for registration.
	CoreURLs []string
	// CoreCAFile is a PEM file of the CA that signed the core API's TLS
	// certificate (https core URLs from a private CA); empty: system roots.
	CoreCAFile string
	JoinToken  string
	Name       string
	Role       string // agentproto.RoleFront or agentproto.RoleBack
	CPUs       float64
	MemoryMB   int64
	DiskMB     int64
	// Endpoint is a Front's public WireGuard host:port; MeshPort must match it.
	Endpoint string
	// PublicURL is where a Front serves the public (registered with the
	// core at every start, shown to app owners).
	PublicURL string
	// Region is where the host is, declared by its operator (registered
	// at every start; empty: unknown).
	Region string
	// HTTPGateway: a Back announcing that its ports parse pipelined
	// requests (agentproto.RegisterRequest.HTTPGateway).
	HTTPGateway bool
	DataDir     string
	// MeshPort is the UDP port of the host's mesh node; 0 picks one.
	MeshPort uint16
	// Bind carries the mesh's UDP (nil: real sockets); benchmarks pass a WANBind.
	Bind conn.Bind
	// PollWait is how long one blocking query for desired state waits.
	PollWait time.Duration
	// DownloadStall is how long a download (an image blob) may go without
	// a byte before it is given up and asked of the next core node; 0
	// means 30 s.
	DownloadStall time.Duration
	// RegisterTimeout is how long a host with no saved identity keeps
	// trying to register while no core node can take it (leader elections,
	// a core still starting); 0 means 2 minutes.
	RegisterTimeout time.Duration
	// ProbePort is the tunnel port where the core checks the host answers
	// (GET /healthz) before it becomes Ready; 0 means DefaultProbePort.
	ProbePort uint16
	// Measure finds what the host really has; nil means MeasureLocal on
	// DataDir. A Back measures its Docker Engine's machine instead. Start
	// refuses a declaration beyond it and registers both.
	Measure MeasureFunc
	Logger  *slog.Logger
}

// DefaultProbePort is where the core probes a new host over the tunnel,
// matching the core's --probe-port default.
const DefaultProbePort = agentproto.DefaultProbePort

const (
	keyFile = "wg.key"
	// maxReply bounds desired state and registration replies.
	maxReply = 32 << 20
)

// Agent is a registered host with its mesh node up.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	node   *meshnet.Node
	client *http.Client
	// coreAPI calls the core's public API (registration).
	coreAPI *http.Client
	stats   counters
	probe   *http.Server
	// probeMux serves the tunnel port the core probes; agents add the
	// calls only core nodes may make (HandleFromCores).
	probeMux *http.ServeMux
	cores    coreList
	// measured is what the host had at start, registered with the core.
	measured agentproto.Capacity

	hintsMu sync.Mutex
	hints   map[string]netip.AddrPort // endpoints saved by the last run, until first used
}

// Start loads or creates the host key, registers (or, when no core answers,
// falls back on the identity saved by an earlier run), and brings the mesh
// node up with the core nodes as hubs.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PollWait == 0 {
		cfg.PollWait = 30 * time.Second
	}
	if cfg.ProbePort == 0 {
		cfg.ProbePort = DefaultProbePort
	}
	if cfg.DownloadStall == 0 {
		cfg.DownloadStall = 30 * time.Second
	}
	if cfg.RegisterTimeout == 0 {
		cfg.RegisterTimeout = 2 * time.Minute
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	key, err := meshnet.LoadOrCreatePrivateKey(filepath.Join(cfg.DataDir, keyFile))
	if err != nil {
		return nil, err
	}
	coreAPI, err := coreAPIClient(cfg.CoreCAFile)
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, hints: loadEndpoints(cfg.DataDir), coreAPI: coreAPI}
	saved, haveSaved := loadIdentity(cfg.DataDir, cfg.Name)
	if cfg.Measure == nil {
		cfg.Measure = MeasureLocal(cfg.DataDir)
	}
	measured, err := cfg.Measure(ctx, saved.HostID)
	if err != nil {
		return nil, fmt.Errorf("measuring the host: %w", err)
	}
	if err := checkDeclared(cfg, measured); err != nil {
		return nil, err
	}
	a.measured = measured
	id, err := a.register(ctx, key.Public(), haveSaved)
	if err != nil {
		if !haveSaved {
			return nil, err
		}
		// Known already: serve on the last identity while the core is away.
		a.log.Warn("could not reach the core; starting from the identity saved by the last run", "err", err, "host_id", saved.HostID)
		id = saved
	} else if err := saveIdentity(cfg.DataDir, id); err != nil {
		return nil, err
	}
	if len(id.CorePeers) == 0 {
		return nil, errors.New("the core returned no core node with a mesh address; is the core's mesh configured?")
	}
	a.cores.set(id)
	a.node, err = meshnet.New(meshnet.Config{
		PrivateKey: key, Address: id.TunnelAddr, ListenPort: cfg.MeshPort, Bind: cfg.Bind,
		Logger: cfg.Logger.With("component", "mesh"),
	})
	if err != nil {
		return nil, err
	}
	if err := a.node.SetPeers(a.peers(nil)); err != nil {
		a.node.Close()
		return nil, err
	}
	if err := a.serveProbe(); err != nil {
		a.node.Close()
		return nil, err
	}
	a.client = a.tunnelClient()
	a.log.Info("host agent up", "host_id", id.HostID, "tunnel", id.TunnelAddr.String(), "mesh_port", a.node.ListenPort())
	return a, nil
}

func (c Config) validate() error {
	var problems []string
	if len(c.CoreURLs) == 0 {
		problems = append(problems, "at least one core URL is required (--core)")
	}
	if c.Name == "" {
		problems = append(problems, "a host name is required (--name)")
	}
	if c.Role != agentproto.RoleFront && c.Role != agentproto.RoleBack {
		problems = append(problems, "role must be front or back")
	}
	if c.DataDir == "" {
		problems = append(problems, "a data directory is required (--data-dir)")
	}
	if c.CPUs <= 0 || c.MemoryMB <= 0 || c.DiskMB <= 0 {
		problems = append(problems, "declared cpus, memory and disk must be positive")
	}
	if c.Role == agentproto.RoleFront && c.Endpoint == "" {
		problems = append(problems, "a Front needs its public WireGuard endpoint (--endpoint host:port)")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// Measured is what the host had when the agent started.
func (a *Agent) Measured() agentproto.Capacity { return a.measured }

// Node is the host's mesh node.
func (a *Agent) Node() *meshnet.Node { return a.node }

// Identity is the host's registration.
func (a *Agent) Identity() Identity { return a.cores.identity() }

// Close brings the mesh node down.
func (a *Agent) Close() error {
	a.probe.Close()
	return a.node.Close()
}

// serveProbe answers the core's readiness probe over the tunnel: reaching
// it proves the host's mesh path works both ways.
func (a *Agent) serveProbe() error {
	ln, err := a.node.Listen(a.cfg.ProbePort)
	if err != nil {
		return fmt.Errorf("probe port: %w", err)
	}
	a.probeMux = http.NewServeMux()
	a.probeMux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	a.probe = &http.Server{Handler: a.probeMux, ReadHeaderTimeout: 5 * time.Second}
	go a.probe.Serve(ln)
	return nil
}

// HandleFromCores serves pattern on the probe port (the host's tunnel
// address) to core nodes only. WireGuard's cryptokey routing makes a tunnel
// source address authentic, so a caller whose address is a core node's is
// that core node; anyone else gets 403.
func (a *Agent) HandleFromCores(pattern string, h http.Handler) {
	a.probeMux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.fromCore(r.RemoteAddr) {
			http.Error(w, "only core nodes may call this", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

func (a *Agent) fromCore(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	for _, c := range a.cores.list() {
		if addr, err := netip.ParseAddr(c.TunnelAddr); err == nil && addr == ap.Addr().Unmap() {
			return true
		}
	}
	return false
}

// coreList is the core nodes this host follows, in failover order, and the
// identity they are saved with.
type coreList struct {
	mu      sync.Mutex
	id      Identity
	current int // index into id.CorePeers of the core node in use
	// moved closes when another core node takes the current one's place,
	// so a blocking query held by a node the heartbeats found dead ends
	// at once instead of waiting out its timeout on a silent tunnel.
	moved chan struct{}
}

func (c *coreList) set(id Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id = id
}

func (c *coreList) identity() Identity {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

func (c *coreList) list() []agentproto.CorePeer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]agentproto.CorePeer(nil), c.id.CorePeers...)
}

// replace adopts a new core list and reports whether it changed, with the
// identity to save.
func (c *coreList) replace(cores []agentproto.CorePeer) (Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := !slices.Equal(cores, c.id.CorePeers)
	c.id.CorePeers = cores
	return c.id, changed
}

func (c *coreList) agentURL() string {
	url, _ := c.inUse()
	return url
}

// inUse is the agent API URL of the core node in use and a channel that
// closes when another node takes its place.
func (c *coreList) inUse() (url string, moved <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.moved == nil {
		c.moved = make(chan struct{})
	}
	return c.id.CorePeers[c.current%len(c.id.CorePeers)].AgentURL, c.moved
}

func (c *coreList) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.id.CorePeers)
}

func (c *coreList) next() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current++
	if c.moved != nil {
		close(c.moved)
		c.moved = nil
	}
}
