// Package localcluster starts a whole Potluck inside one process on
// loopback: core nodes (real raft over TCP), Fronts and Backs (real
// WireGuard netstacks over UDP, real containers in the Docker Engine). The
// end-to-end tests and the simulated-geography benchmark both use it.
//
// Every mesh node can carry a simulated wide-area link (meshnet.WANBind):
// Config.WAN chooses its delay by role and name.
package localcluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"potluck/agent"
	"potluck/apiclient"
	"potluck/back"
	"potluck/back/engine"
	"potluck/core/cluster"
	"potluck/core/dnsserve"
	"potluck/core/pki"
	"potluck/core/server"
	"potluck/front"
	"potluck/internal/freeport"
	"potluck/meshnet"
)

// DefaultOperatorToken is the operator's API token unless Config sets one.
const DefaultOperatorToken = "localcluster-operator-token-0123456789"

// Config describes a local cluster.
type Config struct {
	// Dir holds every node's state (required).
	Dir string
	// Cores is the number of core nodes (default 1).
	Cores int
	// HeartbeatTTL is how long the core waits for a host's heartbeat
	// (default 30s; tests of failure handling use a few seconds).
	HeartbeatTTL time.Duration
	// OperatorToken for the public API (default DefaultOperatorToken).
	OperatorToken string
	// WAN, if set, gives a node's mesh a simulated link: role is "core",
	// "front" or "back". Nil result: real UDP sockets, no delay.
	WAN func(role, name string) *meshnet.WANConfig
	// MetricsStep is the cores' metrics step (0: a minute) and
	// MetricsInterval how often Fronts and Backs report (0: the agents'
	// default); autoscaling tests use a second and less.
	MetricsStep, MetricsInterval time.Duration
	// Logger receives every node's logs with a "node" attribute (nil: none).
	Logger *slog.Logger
	// DNS, if set, runs the adaptive DNS server on every core node, on a
	// free port of 127.0.0.1 (Core(i).DNS.Addr()).
	DNS *dnsserve.Config
}

// Cluster is a running local Potluck.
type Cluster struct {
	cfg Config
	// Loopback is the third octet of this cluster's Back publish addresses
	// (127.0.Loopback.x): a killed earlier run cannot hold their ports.
	Loopback  byte
	JoinToken string

	mu       sync.Mutex
	coreCfgs []server.Config
	cores    []*server.Server
	fronts   []*FrontHost
	backs    []*BackHost
}

// FrontHost is a running Front serving plain HTTP on Addr (127.0.0.1).
type FrontHost struct {
	Name  string
	Front *front.Front
	Addr  string
	// TLSAddr serves HTTPS (StartFrontHTTPS only).
	TLSAddr string

	stopOnce sync.Once
	stop     func()
}

// Stop shuts the Front down (idempotent).
func (f *FrontHost) Stop() { f.stopOnce.Do(f.stop) }

// BackHost is a running Back.
type BackHost struct {
	Name   string
	Config back.Config
	Back   *back.Back

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// Stop ends the agent; its containers keep running, as after a crash.
func (h *BackHost) Stop() {
	h.stopOnce.Do(func() {
		h.cancel()
		<-h.done
		h.Back.Close()
	})
}

// Start brings up the core nodes, waits for a leader and mints a join token.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Dir == "" {
		return nil, errors.New("localcluster: Dir is required")
	}
	if cfg.Cores == 0 {
		cfg.Cores = 1
	}
	if cfg.HeartbeatTTL == 0 {
		cfg.HeartbeatTTL = 30 * time.Second
	}
	if cfg.OperatorToken == "" {
		cfg.OperatorToken = DefaultOperatorToken
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{cfg: cfg, Loopback: pickLoopback(publishedLoopbacks(ctx), time.Now().UnixNano())}
	// Raft and API ports outside the ephemeral range: a port picked from it
	// can be taken by one of the test's own outgoing connections before the
	// node binds it (seen in CI: "address already in use").
	addrs, err := freeport.TCPs(2 * cfg.Cores)
	if err != nil {
		return nil, err
	}
	var peers []cluster.Peer
	for i := range cfg.Cores {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("core%d", i+1), Addr: addrs[i]})
	}
	ca, err := pki.NewCA("localcluster")
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	for i := range cfg.Cores {
		key, err := meshnet.GeneratePrivateKey()
		if err != nil {
			return nil, fmt.Errorf("localcluster: %w", err)
		}
		httpAddr := addrs[cfg.Cores+i]
		port, err := freeport.UDP()
		if err != nil {
			return nil, err
		}
		c.coreCfgs = append(c.coreCfgs, server.Config{
			NodeID: peers[i].ID, DataDir: filepath.Join(cfg.Dir, peers[i].ID), RaftBind: peers[i].Addr, Peers: peers, ClusterCA: ca,
			Timing: cluster.FastTiming, HTTPAddr: httpAddr, OperatorToken: cfg.OperatorToken,
			HeartbeatTTL: cfg.HeartbeatTTL, ReconcileInterval: 200 * time.Millisecond, DrainTime: 3 * time.Second, MetricsStep: cfg.MetricsStep,
			Mesh:   &server.MeshConfig{PrivateKey: &key, ListenPort: port},
			Logger: cfg.Logger.With("node", peers[i].ID), RaftLogOutput: io.Discard,
		})
		if cfg.DNS != nil {
			c.coreCfgs[i].DNSAddr, c.coreCfgs[i].DNS = "127.0.0.1:0", *cfg.DNS
		}
		c.cores = append(c.cores, nil)
	}
	for i := range cfg.Cores {
		if err := c.StartCore(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	err = poll(ctx, 20*time.Second, 100*time.Millisecond, func() bool {
		var st struct{ Leader string }
		code, _ := c.API(ctx, http.MethodGet, "/v1/status", nil, &st)
		return code == 200 && st.Leader != ""
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("localcluster: no core leader: %w", err)
	}
	var tok struct{ Token string }
	if code, err := c.API(ctx, http.MethodPost, "/v1/tokens", map[string]string{"description": "localcluster"}, &tok); code != 201 {
		c.Close()
		return nil, fmt.Errorf("localcluster: minting a join token: status %d: %v", code, err)
	}
	c.JoinToken = tok.Token
	return c, nil
}

// NumCores is the number of core nodes, running or stopped.
func (c *Cluster) NumCores() int { return len(c.coreCfgs) }

// CoreConfig is core node i's configuration.
func (c *Cluster) CoreConfig(i int) server.Config { return c.coreCfgs[i] }

// Core is core node i, or nil while it is stopped.
func (c *Cluster) Core(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cores[i]
}

// StartCore starts core node i (again, from its data dir, after StopCore).
func (c *Cluster) StartCore(i int) error {
	cfg := c.coreCfgs[i]
	bind, err := c.bind("core", cfg.NodeID)
	if err != nil {
		return err
	}
	mesh := *cfg.Mesh
	mesh.Bind = bind
	cfg.Mesh = &mesh
	srv, err := server.Start(cfg)
	if err != nil {
		return fmt.Errorf("localcluster: core %s: %w", cfg.NodeID, err)
	}
	c.mu.Lock()
	c.cores[i] = srv
	c.mu.Unlock()
	return nil
}

// StopCore stops core node i (its data stays).
func (c *Cluster) StopCore(i int) error {
	c.mu.Lock()
	srv := c.cores[i]
	c.cores[i] = nil
	c.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Close()
}

// CoreURLs are the core nodes' public API base URLs.
func (c *Cluster) CoreURLs() []string {
	var urls []string
	for _, cfg := range c.coreCfgs {
		urls = append(urls, "http://"+cfg.HTTPAddr)
	}
	return urls
}

var apiClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// API calls the public API on the first running core node that answers
// below 500, decoding a 2xx answer into out. When every node answers 5xx or
// not at all (an election), it tries again for up to 10 s; a write keeps one
// request id throughout, so the core applies it once. Status 0: no node
// answered.
func (c *Cluster) API(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd []byte
	if body != nil {
		var err error
		if rd, err = json.Marshal(body); err != nil {
			return 0, fmt.Errorf("localcluster: %w", err)
		}
	}
	var reqID string
	if method != http.MethodGet {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return 0, fmt.Errorf("localcluster: %w", err)
		}
		reqID = hex.EncodeToString(id[:])
	}
	deadline := time.Now().Add(10 * time.Second)
	lastErr := errors.New("no core node running")
	for {
		for i, url := range c.CoreURLs() {
			if c.Core(i) == nil {
				continue
			}
			req, err := http.NewRequestWithContext(ctx, method, url+path, bytes.NewReader(rd))
			if err != nil {
				return 0, fmt.Errorf("localcluster: %w", err)
			}
			req.Header.Set("Authorization", "Bearer "+c.cfg.OperatorToken)
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			if reqID != "" {
				req.Header.Set("X-Request-Id", reqID)
			}
			resp, err := apiClient.Do(req)
			if err != nil {
				lastErr = err
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				lastErr = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
				continue
			}
			if resp.StatusCode >= 300 {
				return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
			}
			if out != nil {
				if err := json.Unmarshal(b, out); err != nil {
					return resp.StatusCode, fmt.Errorf("localcluster: %s %s: %w: %s", method, path, err, b)
				}
			}
			return resp.StatusCode, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("localcluster: %s %s: %w", method, path, lastErr)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) agentConfig(name, role, dir string) (agent.Config, error) {
	bind, err := c.bind(role, name)
	if err != nil {
		return agent.Config{}, err
	}
	return agent.Config{
		CoreURLs: c.CoreURLs(), JoinToken: c.JoinToken, Name: name, Role: role,
		CPUs: 2, MemoryMB: 1024, DiskMB: 4096, DataDir: dir, PollWait: 10 * time.Second, Bind: bind,
	}, nil
}

// bind is a fresh WANBind for a node, or nil (real sockets) without WAN.
func (c *Cluster) bind(role, name string) (conn.Bind, error) {
	if c.cfg.WAN == nil {
		return nil, nil
	}
	w := c.cfg.WAN(role, name)
	if w == nil {
		return nil, nil
	}
	b, err := meshnet.NewWANBind(nil, *w)
	if err != nil {
		return nil, fmt.Errorf("localcluster: %s %s: %w", role, name, err)
	}
	return b, nil
}

// StartFront starts a Front named name; it serves HTTP on a free port of
// 127.0.0.1 (FrontHost.Addr).
func (c *Cluster) StartFront(ctx context.Context, name string) (*FrontHost, error) {
	return c.StartFrontWith(ctx, name, FrontOptions{})
}

// StartFrontHTTPS starts a Front that also serves HTTPS (FrontHost.TLSAddr)
// with cfg; its public ports are the ones it listens on.
func (c *Cluster) StartFrontHTTPS(ctx context.Context, name string, cfg front.HTTPSConfig) (*FrontHost, error) {
	return c.StartFrontWith(ctx, name, FrontOptions{HTTPS: &cfg})
}

// FrontOptions place a Front: the loopback address it serves on (default
// 127.0.0.1; any of 127.0.0.0/8 tells Fronts apart in DNS answers), the
// region it declares, and HTTPS. With PublicIP set it registers its public
// URL.
type FrontOptions struct {
	PublicIP netip.Addr
	Region   string
	HTTPS    *front.HTTPSConfig
}

// StartFrontWith starts a Front named name placed as o says.
func (c *Cluster) StartFrontWith(ctx context.Context, name string, o FrontOptions) (*FrontHost, error) {
	port, err := freeport.UDP()
	if err != nil {
		return nil, err
	}
	cfg, err := c.agentConfig(name, "front", filepath.Join(c.cfg.Dir, name))
	if err != nil {
		return nil, err
	}
	ip := "127.0.0.1"
	if o.PublicIP.IsValid() {
		ip = o.PublicIP.String()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("localcluster: front %s: %w", name, err)
	}
	cfg.MeshPort, cfg.Endpoint, cfg.Region = port, fmt.Sprintf("127.0.0.1:%d", port), o.Region
	if o.PublicIP.IsValid() {
		cfg.PublicURL = "http://" + ln.Addr().String()
	}
	var tln net.Listener
	if https := o.HTTPS; https != nil {
		if tln, err = net.Listen("tcp", net.JoinHostPort(ip, "0")); err != nil {
			ln.Close()
			return nil, fmt.Errorf("localcluster: front %s: %w", name, err)
		}
		https.ListenHost = ip
		https.HTTPPort = ln.Addr().(*net.TCPAddr).Port
		https.HTTPSPort = tln.Addr().(*net.TCPAddr).Port
	}
	f, err := front.Start(ctx, front.Config{Agent: cfg, Heartbeat: time.Second, MetricsInterval: c.cfg.MetricsInterval,
		HTTPS: o.HTTPS, Logger: c.cfg.Logger.With("node", name)})
	if err != nil {
		ln.Close()
		if tln != nil {
			tln.Close()
		}
		return nil, fmt.Errorf("localcluster: front %s: %w", name, err)
	}
	go f.Serve(ln)
	h := &FrontHost{Name: name, Front: f, Addr: ln.Addr().String()}
	if tln != nil {
		go f.ServeTLS(tln)
		h.TLSAddr = tln.Addr().String()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(runCtx) }()
	h.stop = func() {
		cancel()
		<-done
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		f.Shutdown(sctx)
	}
	c.mu.Lock()
	c.fronts = append(c.fronts, h)
	c.mu.Unlock()
	return h, nil
}

// StartBack starts a Back named name with its state in dir (the same dir
// again brings the same host back). Index picks its publish address
// 127.0.Loopback.(11+index); Backs running together need different ones.
func (c *Cluster) StartBack(ctx context.Context, name string, index int, dir string) (*BackHost, error) {
	acfg, err := c.agentConfig(name, "back", dir)
	if err != nil {
		return nil, err
	}
	cfg := back.Config{
		Agent:     acfg,
		PublishIP: netip.AddrFrom4([4]byte{127, 0, c.Loopback, byte(11 + index)}),
		Heartbeat: time.Second, Resync: time.Second, MetricsInterval: c.cfg.MetricsInterval, Logger: c.cfg.Logger.With("node", name),
	}
	b, err := back.Start(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("localcluster: back %s: %w", name, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	h := &BackHost{Name: name, Config: cfg, Back: b, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(h.done); b.Run(runCtx) }()
	c.mu.Lock()
	c.backs = append(c.backs, h)
	c.mu.Unlock()
	return h, nil
}

// Hosts lists the hosts by name.
func (c *Cluster) Hosts(ctx context.Context) (map[string]apiclient.Host, error) {
	var list []apiclient.Host
	if _, err := c.API(ctx, http.MethodGet, "/v1/hosts", nil, &list); err != nil {
		return nil, err
	}
	out := map[string]apiclient.Host{}
	for _, h := range list {
		out[h.Name] = h
	}
	return out, nil
}

// WaitReady waits until every named host is ready (probed over the tunnel).
func (c *Cluster) WaitReady(ctx context.Context, timeout time.Duration, names ...string) error {
	err := poll(ctx, timeout, 200*time.Millisecond, func() bool {
		hs, err := c.Hosts(ctx)
		if err != nil {
			return false
		}
		for _, n := range names {
			if hs[n].Status != "ready" {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("localcluster: hosts %v never became ready: %w", names, err)
	}
	return nil
}

// PushTarball uploads a `docker save` tarball as app (apiclient.UploadApp
// against the first core node).
func (c *Cluster) PushTarball(ctx context.Context, app, tarball string, containerPort int) error {
	f, err := os.Open(tarball)
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	api, err := apiclient.New(c.CoreURLs()[0], c.cfg.OperatorToken,
		apiclient.WithHTTPClient(&http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{Proxy: nil}}))
	if err != nil {
		return fmt.Errorf("localcluster: %w", err)
	}
	if _, err := api.UploadApp(ctx, app, containerPort, f, st.Size(), nil); err != nil {
		return fmt.Errorf("localcluster: pushing %s: %w", app, err)
	}
	return nil
}

// Installation returns the named installation.
func (c *Cluster) Installation(ctx context.Context, name string) (apiclient.Installation, error) {
	var v apiclient.Installation
	_, err := c.API(ctx, http.MethodGet, "/v1/installations/"+name, nil, &v)
	return v, err
}

// RunningOn returns the sorted host names of the installation's running instances.
func (c *Cluster) RunningOn(ctx context.Context, name string) ([]string, error) {
	v, err := c.Installation(ctx, name)
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, in := range v.Instances {
		if in.State == "running" {
			hosts = append(hosts, in.HostName)
		}
	}
	slices.Sort(hosts)
	return hosts, nil
}

// Install creates an installation (the public API's JSON fields) and waits
// until backs instances run.
func (c *Cluster) Install(ctx context.Context, spec map[string]any, backs int, timeout time.Duration) error {
	if code, err := c.API(ctx, http.MethodPost, "/v1/installations", spec, nil); code != http.StatusCreated {
		return fmt.Errorf("localcluster: creating installation: status %d: %w", code, err)
	}
	name, _ := spec["name"].(string)
	err := poll(ctx, timeout, 250*time.Millisecond, func() bool {
		on, err := c.RunningOn(ctx, name)
		return err == nil && len(on) == backs
	})
	if err != nil {
		return fmt.Errorf("localcluster: installation %s: instances never ran: %w", name, err)
	}
	return nil
}

// Close stops every Front, Back and core node and removes the Backs' containers.
func (c *Cluster) Close() error {
	c.mu.Lock()
	fronts, backs := c.fronts, c.backs
	c.fronts, c.backs = nil, nil
	c.mu.Unlock()
	for _, f := range fronts {
		f.Stop()
	}
	var hostIDs []string
	for _, b := range backs {
		hostIDs = append(hostIDs, b.Back.Agent().Identity().HostID)
		b.Stop()
	}
	var errs []error
	for i := range c.cores {
		if err := c.StopCore(i); err != nil {
			errs = append(errs, err)
		}
	}
	slices.Sort(hostIDs)
	for _, id := range slices.Compact(hostIDs) {
		if err := removeHostResources(context.Background(), id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// publishedLoopbacks are the third octets of the loopback addresses that
// running Potluck containers are published on (none without Docker).
func publishedLoopbacks(ctx context.Context) map[byte]bool {
	used := map[byte]bool{}
	eng, err := engine.Connect(ctx, "", nil)
	if err != nil {
		return used
	}
	defer eng.Close()
	cs, err := eng.List(ctx, "")
	if err != nil {
		return used
	}
	for _, c := range cs {
		if a := c.PublishIP; a.Is4() && a.IsLoopback() {
			used[a.As4()[2]] = true
		}
	}
	return used
}

// pickLoopback chooses the third octet of a cluster's publish addresses
// (127.0.X.11 and up), 1-250, from seed, skipping those in used: a
// container that an earlier test or a killed run left running holds its
// address and port, and an instance published on the same one never
// starts ("port is already allocated": CI saw one pending for 80 s).
func pickLoopback(used map[byte]bool, seed int64) byte {
	start := seed % 250
	if start < 0 {
		start += 250
	}
	for i := range int64(250) {
		if b := byte(1 + (start+i)%250); !used[b] {
			return b
		}
	}
	return byte(1 + start) // every octet taken: a collision is then possible
}

// removeHostResources removes a stopped Back's containers and installation
// networks from the local Docker Engine. Removing a container removes its
// network once unused, but a Back stopped between creating a network and
// starting its first container there leaves the network alone.
func removeHostResources(ctx context.Context, hostID string) error {
	eng, err := engine.Connect(ctx, "", nil)
	if err != nil {
		return fmt.Errorf("localcluster: cleanup: %w", err)
	}
	defer eng.Close()
	cs, err := eng.List(ctx, hostID)
	if err != nil {
		return fmt.Errorf("localcluster: cleanup: %w", err)
	}
	var errs []error
	for _, ct := range cs {
		errs = append(errs, eng.Remove(ctx, ct.ID, 0))
	}
	errs = append(errs, eng.RemoveUnusedNetworks(ctx, hostID))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localcluster: cleanup of %s: %w", hostID, err)
	}
	return nil
}

// poll calls ok every interval until it is true, ctx ends or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if ok() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
