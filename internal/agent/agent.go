// Package agent is what a Front and a Back agent have in common: the host's
// identity (its WireGuard key never leaves its data directory), registration
// with the core, the host's mesh node, following its desired state from the
// core's agent API over the tunnel (with failover between core nodes and the
// last known state kept on disk, so a host restarted while the core is away
// serves what it served before), and heartbeats.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"potluck/core/agentapi"
	"potluck/core/api"
	"potluck/core/fsm"
	"potluck/meshnet"
)

// Config describes a host agent.
type Config struct {
	// CoreURLs are the core nodes' public API base URLs, for registration.
	CoreURLs  []string
	JoinToken string
	Name      string
	Role      string // "front" or "back"
	CPUs      float64
	MemoryMB  int64
	DiskMB    int64
	// Endpoint is a Front's public WireGuard host:port; MeshPort must match it.
	Endpoint string
	DataDir  string
	// MeshPort is the UDP port of the host's mesh node; 0 picks one.
	MeshPort uint16
	// Bind carries the mesh's UDP (nil: real sockets); benchmarks pass a WANBind.
	Bind conn.Bind
	// PollWait is how long one blocking query for desired state waits.
	PollWait time.Duration
	// RegisterTimeout is how long a host with no saved identity keeps
	// trying to register while no core node can take it (leader elections,
	// a core still starting); 0 means 2 minutes.
	RegisterTimeout time.Duration
	// ProbePort is the tunnel port where the core checks the host answers
	// (GET /healthz) before it becomes Ready; 0 means DefaultProbePort.
	ProbePort uint16
	Logger    *slog.Logger
}

// Identity is what registration gave this host; it is kept in the data
// directory so that a restart without the core still knows its place.
type Identity struct {
	HostID        string         `json:"host_id"`
	Name          string         `json:"name"`
	Role          string         `json:"role"`
	TunnelAddress netip.Addr     `json:"tunnel_address"`
	CorePeers     []api.CorePeer `json:"core_peers"`
}

// Agent is a registered host with its mesh node up.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	node     *meshnet.Node
	identity Identity
	client   *http.Client
	stats    counters
	probe    *http.Server

	mu      sync.Mutex
	current int // index into identity.CorePeers of the core node in use
	cores   []api.CorePeer
}

// agentDialTimeout bounds a tunnel dial to a core node's agent API.
const agentDialTimeout = 2 * time.Second

// DefaultProbePort is where the core probes a new host over the tunnel,
// matching the core's --probe-port default.
const DefaultProbePort = 7401

const (
	keyFile      = "wg.key"
	identityFile = "identity.json"
	stateFile    = "desired.json"
	maxReply     = 32 << 20 // desired state and registration replies
)

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
	a := &Agent{cfg: cfg, log: cfg.Logger}
	var saved Identity
	haveSaved := readJSON(filepath.Join(cfg.DataDir, identityFile), &saved) == nil && saved.Name == cfg.Name
	id, err := a.register(ctx, key.Public(), haveSaved)
	if err != nil {
		if !haveSaved {
			return nil, err
		}
		// Known already: serve on the last identity while the core is away.
		a.log.Warn("could not reach the core; starting from the identity saved by the last run", "err", err, "host_id", saved.HostID)
		id = saved
	} else if err := writeJSON(filepath.Join(cfg.DataDir, identityFile), id); err != nil {
		return nil, err
	}
	a.identity, a.cores = id, id.CorePeers
	if len(a.cores) == 0 {
		return nil, errors.New("the core returned no core node with a mesh address; is the core's mesh configured?")
	}
	a.node, err = meshnet.New(meshnet.Config{
		PrivateKey: key, Address: id.TunnelAddress, ListenPort: cfg.MeshPort, Bind: cfg.Bind,
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
	a.client = &http.Client{Transport: &http.Transport{
		// A live core node answers a tunnel dial in milliseconds; a dead
		// one never does, so give up fast and try the next.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, agentDialTimeout)
			defer cancel()
			return a.node.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}
	a.log.Info("host agent up", "host_id", id.HostID, "tunnel", id.TunnelAddress.String(), "mesh_port", a.node.ListenPort())
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
	if c.Role != "front" && c.Role != "back" {
		problems = append(problems, "role must be front or back")
	}
	if c.DataDir == "" {
		problems = append(problems, "a data directory is required (--data-dir)")
	}
	if c.CPUs <= 0 || c.MemoryMB <= 0 || c.DiskMB <= 0 {
		problems = append(problems, "declared cpus, memory and disk must be positive")
	}
	if c.Role == "front" && c.Endpoint == "" {
		problems = append(problems, "a Front needs its public WireGuard endpoint (--endpoint host:port)")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// register asks each core URL in turn; registering again with the same name
// and key returns the existing registration. A host already known (once)
// tries each node once and lets the caller fall back on its saved identity;
// a new host keeps trying with backoff for RegisterTimeout through elections
// and restarts, with one request id so the core applies the write once. A
// 4xx answer ends it at once: retrying would not help.
func (a *Agent) register(ctx context.Context, pub meshnet.PublicKey, once bool) (Identity, error) {
	body, _ := json.Marshal(map[string]any{
		"name": a.cfg.Name, "role": a.cfg.Role, "public_key": pub.String(),
		"cpus": a.cfg.CPUs, "memory_mb": a.cfg.MemoryMB, "disk_mb": a.cfg.DiskMB, "endpoint": a.cfg.Endpoint,
	})
	hdr := http.Header{"X-Request-Id": {"register-" + a.cfg.Name + "-" + pub.Hex()[:16]}}
	deadline := time.Now().Add(a.cfg.RegisterTimeout)
	backoff := 500 * time.Millisecond
	for {
		var errs []error
		for _, base := range a.cfg.CoreURLs {
			var reg api.RegistrationView
			err := doJSON(ctx, http.DefaultClient, http.MethodPost, strings.TrimRight(base, "/")+"/v1/hosts", a.cfg.JoinToken, hdr, body, &reg)
			if err == nil {
				addr, perr := netip.ParseAddr(reg.TunnelAddress)
				if perr != nil {
					return Identity{}, fmt.Errorf("register: core gave tunnel address %q: %w", reg.TunnelAddress, perr)
				}
				return Identity{HostID: reg.Host.ID, Name: a.cfg.Name, Role: a.cfg.Role, TunnelAddress: addr, CorePeers: reg.CorePeers}, nil
			}
			var rejected *RejectedError
			if errors.As(err, &rejected) {
				return Identity{}, fmt.Errorf("register with %s: %w", base, err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", base, err))
		}
		err := fmt.Errorf("register: no core node took the registration: %w", errors.Join(errs...))
		if once || time.Now().Add(backoff).After(deadline) {
			return Identity{}, err
		}
		a.log.Warn("registration not accepted yet; retrying", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return Identity{}, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// Node is the host's mesh node.
func (a *Agent) Node() *meshnet.Node { return a.node }

// Identity is the host's registration.
func (a *Agent) Identity() Identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.identity
}

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
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	a.probe = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go a.probe.Serve(ln)
	return nil
}

// peers are the core nodes (hubs) plus the desired state's peers.
func (a *Agent) peers(d *agentapi.DesiredState) []meshnet.Peer {
	a.mu.Lock()
	cores := append([]api.CorePeer(nil), a.cores...)
	a.mu.Unlock()
	seen := map[meshnet.PublicKey]bool{}
	var out []meshnet.Peer
	add := func(key, addr, endpoint string, hub bool) {
		p, err := toPeer(key, addr, endpoint, hub)
		if err != nil {
			a.log.Warn("ignoring a peer the core described badly", "err", err)
			return
		}
		if !seen[p.PublicKey] && p.PublicKey != a.node.PublicKey() {
			seen[p.PublicKey] = true
			out = append(out, p)
		}
	}
	for _, c := range cores {
		add(c.PublicKey, c.TunnelAddress, c.Endpoint, true)
	}
	if d != nil {
		for _, p := range d.Peers {
			add(p.PublicKey, p.TunnelAddress, p.Endpoint, p.Hub && p.Endpoint != "")
		}
	}
	return out
}

func toPeer(key, addr, endpoint string, hub bool) (meshnet.Peer, error) {
	k, err := meshnet.ParsePublicKey(key)
	if err != nil {
		return meshnet.Peer{}, err
	}
	ta, err := netip.ParseAddr(addr)
	if err != nil {
		return meshnet.Peer{}, fmt.Errorf("tunnel address %q: %w", addr, err)
	}
	p := meshnet.Peer{PublicKey: k, Address: ta, Hub: hub}
	if endpoint != "" {
		if p.Endpoint, err = netip.ParseAddrPort(endpoint); err != nil {
			return meshnet.Peer{}, fmt.Errorf("endpoint %q: %w", endpoint, err)
		}
	}
	return p, nil
}

// ErrDecommissioned is returned by Follow once the core says this host was
// decommissioned: its work is over and its key no longer opens anything.
var ErrDecommissioned = errors.New("this host was decommissioned by the operator")

// ExitDecommissioned is the exit status of an agent whose host was
// decommissioned, so a supervisor can tell it from a failure and not restart
// it (systemd: RestartPreventExitStatus=3).
const ExitDecommissioned = 3

// Apply receives each new desired state. It is called from one goroutine,
// never concurrently.
type Apply func(ctx context.Context, d *agentapi.DesiredState) error

// Follow applies the last saved desired state at once (so a host restarted
// while the core is away serves what it served), then follows the core with
// blocking queries until ctx ends, applying each new state. Errors reaching
// the core are retried with backoff against the next core node. When the
// core says the host was decommissioned, Follow applies an empty state
// and returns ErrDecommissioned.
func (a *Agent) Follow(ctx context.Context, apply Apply) error {
	var index uint64
	var saved agentapi.DesiredState
	if err := readJSON(filepath.Join(a.cfg.DataDir, stateFile), &saved); err == nil {
		a.log.Info("applying the last known desired state", "index", saved.Index)
		a.applyState(ctx, &saved, apply)
	}
	backoff, failedInRow := time.Second, 0
	for ctx.Err() == nil {
		d, err := a.fetchState(ctx, index)
		var rejected *RejectedError
		if errors.As(err, &rejected) && rejected.Status == http.StatusGone {
			a.log.Warn("the core decommissioned this host; standing down")
			empty := &agentapi.DesiredState{Peers: []agentapi.Peer{}, Instances: []agentapi.Instance{}, Routes: []agentapi.Route{}}
			if err := writeJSON(filepath.Join(a.cfg.DataDir, stateFile), empty); err != nil {
				a.log.Warn("could not save desired state", "err", err)
			}
			a.applyState(ctx, empty, apply) // drops every tunnel but the core nodes'
			return ErrDecommissioned
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			a.stats.stateFailures.Inc()
			a.nextCore()
			// Try every core node at once; back off only when all failed.
			if failedInRow++; failedInRow < a.coreCount() {
				continue
			}
			a.log.Warn("no core node answers; keeping the last desired state", "err", err, "retry_in", backoff)
			failedInRow = 0
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff, failedInRow = time.Second, 0
		a.stats.stateFetches.Inc()
		if d.Index == index && index != 0 {
			continue // the wait timed out with nothing new
		}
		index = d.Index
		if err := writeJSON(filepath.Join(a.cfg.DataDir, stateFile), d); err != nil {
			a.log.Warn("could not save desired state", "err", err)
		}
		a.applyState(ctx, d, apply)
	}
	return ctx.Err()
}

func (a *Agent) applyState(ctx context.Context, d *agentapi.DesiredState, apply Apply) {
	a.stats.appliedIndex.Store(d.Index)
	a.refreshCores(d)
	if err := a.node.SetPeers(a.peers(d)); err != nil {
		a.log.Error("mesh peers not applied", "err", err)
	}
	if err := apply(ctx, d); err != nil {
		a.log.Error("desired state not fully applied", "index", d.Index, "err", err)
	}
}

// refreshCores adopts the core nodes a desired state lists: nodes that
// joined after this host registered, or left, are known from then on (and
// saved with the identity for the next start).
func (a *Agent) refreshCores(d *agentapi.DesiredState) {
	var cores []api.CorePeer
	for _, p := range d.Peers {
		if p.Role == "core" && p.AgentURL != "" {
			cores = append(cores, api.CorePeer{ID: p.Name, PublicKey: p.PublicKey, Endpoint: p.Endpoint, TunnelAddress: p.TunnelAddress, AgentURL: p.AgentURL})
		}
	}
	if len(cores) == 0 {
		return // an empty state (standing down) or an older core: keep what we know
	}
	a.mu.Lock()
	changed := !slices.Equal(cores, a.cores)
	a.cores = cores
	a.identity.CorePeers = cores
	id := a.identity
	a.mu.Unlock()
	if changed {
		a.log.Info("core nodes updated", "count", len(cores))
		if err := writeJSON(filepath.Join(a.cfg.DataDir, identityFile), id); err != nil {
			a.log.Warn("could not save identity", "err", err)
		}
	}
}

func (a *Agent) agentURL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cores[a.current%len(a.cores)].AgentURL
}

func (a *Agent) coreCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cores)
}

func (a *Agent) nextCore() {
	a.mu.Lock()
	a.current++
	a.mu.Unlock()
}

func (a *Agent) fetchState(ctx context.Context, index uint64) (*agentapi.DesiredState, error) {
	url := fmt.Sprintf("%s/v1/agent/state?index=%d&wait=%s", a.agentURL(), index, a.cfg.PollWait)
	ctx, cancel := context.WithTimeout(ctx, a.cfg.PollWait+15*time.Second)
	defer cancel()
	var d agentapi.DesiredState
	if err := doJSON(ctx, a.client, http.MethodGet, url, "", nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Heartbeat reports the host alive with its instances' states, trying each
// core node once.
func (a *Agent) Heartbeat(ctx context.Context, reports []fsm.InstanceUpdate) error {
	if reports == nil {
		reports = []fsm.InstanceUpdate{}
	}
	body, _ := json.Marshal(agentapi.HeartbeatRequest{Instances: reports})
	var errs []error
	for range a.coreCount() {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := doJSON(hctx, a.client, http.MethodPost, a.agentURL()+"/v1/agent/heartbeat", "", nil, body, nil)
		cancel()
		if err == nil {
			a.stats.heartbeats.Inc()
			return nil
		}
		errs = append(errs, err)
		a.nextCore()
	}
	a.stats.heartbeatFailures.Inc()
	return fmt.Errorf("heartbeat: %w", errors.Join(errs...))
}

// Heartbeats reports to the core every interval, with reports() as the
// instances' states (nil for a Front), until ctx ends.
func (a *Agent) Heartbeats(ctx context.Context, interval time.Duration, reports func() []fsm.InstanceUpdate) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var r []fsm.InstanceUpdate
		if reports != nil {
			r = reports()
		}
		if err := a.Heartbeat(ctx, r); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat not delivered", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Download fetches an agent API path (a blob) over the tunnel into w.
func (a *Agent) Download(ctx context.Context, path string, w io.Writer) error {
	var errs []error
	for range a.coreCount() {
		err := a.download(ctx, a.agentURL()+path, w)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		a.nextCore()
	}
	return errors.Join(errs...)
}

func (a *Agent) download(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return replyError(resp)
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// RejectedError is a 4xx answer from the core: the request was wrong, and
// sending it elsewhere would not help.
type RejectedError struct {
	Status  int
	Message string
}

func (e *RejectedError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

func doJSON(ctx context.Context, c *http.Client, method, url, token string, hdr http.Header, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return replyError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxReply))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReply)).Decode(out); err != nil {
		return fmt.Errorf("reading %s reply: %w", url, err)
	}
	return nil
}

func replyError(resp *http.Response) error {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
		return &RejectedError{Status: resp.StatusCode, Message: e.Error}
	}
	return fmt.Errorf("%s: %s", resp.Status, e.Error)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeJSON replaces path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
