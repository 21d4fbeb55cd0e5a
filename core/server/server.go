// Package server wires one core node together: the raft node, the public API
// on TCP, the blob store and its replication, the leader's reconciler, and
// (when a mesh is configured) the agent API on the node's tunnel address. It
// also keeps this node's own record (API URL, mesh key and endpoint) in the
// replicated state and sets the operator token at bootstrap.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"potluck/core/api"
	"potluck/core/blobs"
	"potluck/core/certseal"
	"potluck/core/cluster"
	"potluck/core/dnsserve"
	"potluck/core/fsm"
	"potluck/core/metrics"
	"potluck/core/pki"
	"potluck/core/reconcile"
	"potluck/core/scaler"
	"potluck/core/series"
	"potluck/core/ui"
	"potluck/internal/jsonhttp"
	"potluck/internal/version"
)

// Config is everything one core node needs.
type Config struct {
	NodeID        string
	DataDir       string
	RaftBind      string
	RaftAdvertise string
	Peers         []cluster.Peer // identical list on every node; empty = single node
	// JoinURL: instead of bootstrapping, ask the group at this API URL to add
	// this node as a voter (first start only; later starts use the data dir).
	JoinURL string
	// ClusterCA is the CA raft's mutual TLS trusts (see core/pki): every
	// core node of a group holds the same one. Required with Peers or
	// JoinURL; a one-node group without it creates its own under DataDir.
	ClusterCA         *pki.CA
	Timing            cluster.Timing
	SnapshotThreshold uint64

	HTTPAddr string // public API listen address
	// MetricsAddr, if set, serves GET /metrics without a token (for a
	// Prometheus on the same machine or a private network); the public API
	// serves them to the operator token only.
	MetricsAddr  string
	AdvertiseURL string // how other core nodes reach this API; default http(s)://<listen address>

	// TLS for the public API. With a certificate and key the API is HTTPS
	// only; TLSCAFile (PEM) is what this node trusts when it calls other core
	// nodes (default: the system roots).
	TLSCertFile string
	TLSKeyFile  string
	TLSCAFile   string

	// OperatorToken is set in the state at bootstrap (later rotations live
	// in the state; this one is not needed after bootstrap). Core nodes
	// call each other with a node token derived from the cluster CA.
	OperatorToken string

	HeartbeatTTL      time.Duration
	ReconcileInterval time.Duration
	// DrainTime is how long instances that lost their routes (replaced by a
	// release, or of a deleted installation) keep running so requests in
	// flight finish; 0 = reconcile.DefaultDrainTime.
	DrainTime      time.Duration
	MaxUploadBytes int64
	// MaxImageUnpacked bounds what an uploaded image may unpack to on a
	// Back (decompression bombs); 0 = blobs.DefaultMaxUncompressed.
	MaxImageUnpacked int64
	// BodyIdleTimeout bounds the wait for each read of a request body on
	// the public listener; 0 = api.DefaultBodyIdleTimeout.
	BodyIdleTimeout time.Duration
	ReadyOnRegister bool // no tunnel probe (development without a mesh)
	// MetricsStep is the length of one point of the installations' time
	// series and how often the autoscaler decides (0: series.DefaultStep,
	// a minute; tests use a second).
	MetricsStep time.Duration
	// BlobGCSettle is how long a node's state must have been current (see
	// cluster.Node.Current) before it removes blobs no app uses; 0 = 30 s.
	BlobGCSettle time.Duration

	Mesh *MeshConfig // nil = no mesh, no agent API
	// BenchAgentAddr (loopback only; benchmarks) also serves the agent API
	// there, callers named by a header instead of a tunnel: see benchagent.go.
	BenchAgentAddr string

	// DNSAddr, if set, runs the adaptive DNS server (core/dnsserve) on this
	// address, UDP and TCP, answering from this node's copy of the state;
	// DNS configures it (its Source and Logger are filled in here).
	DNSAddr string
	DNS     dnsserve.Config

	Logger        *slog.Logger
	RaftLogOutput io.Writer
}

// Server is a running core node.
type Server struct {
	cfg        Config
	Node       *cluster.Node
	API        *api.Server
	Blobs      *blobs.Store
	Reconciler *reconcile.Reconciler
	Scaler     *scaler.Scaler
	Metrics    *metrics.Registry
	DNS        *dnsserve.Server // nil unless Config.DNSAddr is set
	mesh       *meshRuntime
	benchAgent *http.Server // Config.BenchAgentAddr; nil when off

	httpSrv   *http.Server
	listener  net.Listener
	metricsLn net.Listener // --metrics-listen; nil when off
	metrics   *http.Server
	url       string
	nodeToken string // node-to-node credential (pki.CA.NodeToken)
	client    *http.Client
	transport *http.Transport // to other core nodes (forwarding, blobs, internal calls)
	log       *slog.Logger

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	removed chan struct{} // closed when this node was removed from the group

	// sealer seals the certificate store (key derived from the cluster CA).
	sealer *certseal.Sealer
}

// Start opens the raft node and starts serving. Each step opens one part;
// when a step fails, Close releases whatever the earlier steps opened, so
// there is one cleanup path for a failed start and a shutdown.
func Start(cfg Config) (_ *Server, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("node", cfg.NodeID), removed: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if err := checkNotRemoved(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	if err := s.openStores(); err != nil {
		return nil, err
	}
	if err := s.openMesh(); err != nil {
		return nil, err
	}
	handler, err := s.handler()
	if err != nil {
		return nil, err
	}
	if err := s.serve(handler); err != nil {
		return nil, err
	}
	if err := s.startDNS(); err != nil {
		return nil, err
	}
	s.log.Info("core node started", "api", s.url, "raft", s.Node.RaftAddr())
	return s, nil
}

func (cfg Config) validate() error {
	if cfg.OperatorToken == "" {
		return errors.New("server: operator token is required")
	}
	if len(cfg.OperatorToken) < 16 {
		return errors.New("server: operator token must be at least 16 characters")
	}
	if cfg.MetricsStep < 0 || (cfg.MetricsStep > 0 && cfg.MetricsStep < 100*time.Millisecond) || cfg.MetricsStep > time.Hour {
		return fmt.Errorf("server: metrics step %v: must be within 100ms..1h", cfg.MetricsStep)
	}
	return nil
}

// listen opens the public API listener (TLS when a certificate is given),
// settles this node's API URL and builds the client for calls to other core
// nodes.
func (s *Server) listen() error {
	cfg := s.cfg
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("server: listen %s: %w", cfg.HTTPAddr, err)
	}
	s.listener = ln
	if cfg.MetricsAddr != "" {
		if s.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("server: metrics listen %s: %w", cfg.MetricsAddr, err)
		}
	}
	tlsClient, err := clientTLS(cfg)
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("server: TLS certificate: %w", err)
		}
		s.listener = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	s.url = cfg.AdvertiseURL
	if s.url == "" {
		s.url = scheme + "://" + ln.Addr().String()
	}
	// Forwarded blocking queries may wait up to jsonhttp.MaxWait for an answer.
	transport := &http.Transport{TLSClientConfig: tlsClient, ResponseHeaderTimeout: jsonhttp.MaxWait + time.Minute, IdleConnTimeout: 30 * time.Second}
	s.transport = transport
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: transport}
	return nil
}

// openStores opens the blob store and the raft node, which restores the
// state from the data directory.
func (s *Server) openStores() error {
	cfg := s.cfg
	store, err := blobs.Open(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return err
	}
	store.MaxUncompressed = cfg.MaxImageUnpacked
	s.Blobs = store
	raftTLS, err := s.raftTLS()
	if err != nil {
		return err
	}
	node, err := cluster.Open(cluster.Config{
		ID: cfg.NodeID, DataDir: filepath.Join(cfg.DataDir, "raft"), RaftBind: cfg.RaftBind, RaftAdvertise: cfg.RaftAdvertise,
		Peers: cfg.Peers, Join: cfg.JoinURL != "", TLS: raftTLS, Timing: cfg.Timing, SnapshotThreshold: cfg.SnapshotThreshold, Logger: s.log, RaftLogOutput: cfg.RaftLogOutput,
	})
	if err != nil {
		return err
	}
	s.Node = node
	s.Metrics = metrics.New(s.gauges)
	return nil
}

// raftTLS issues this node its certificate from the cluster CA and returns
// raft's mutual TLS. A one-node group may run on a CA of its own (created in
// the data dir); a group of several must share one, or its members could
// not tell each other from an attacker.
func (s *Server) raftTLS() (*cluster.TLS, error) {
	ca := s.cfg.ClusterCA
	if ca == nil {
		if len(s.cfg.Peers) > 1 || s.cfg.JoinURL != "" {
			return nil, errors.New("raft between core nodes needs the cluster CA: create it once with `potluck-core ca init --out DIR`, copy DIR to every core node and pass --cluster-ca DIR")
		}
		var err error
		if ca, err = pki.LoadOrCreate(filepath.Join(s.cfg.DataDir, "cluster-ca"), s.cfg.NodeID); err != nil {
			return nil, err
		}
	}
	var hosts []string
	for _, addr := range []string{s.cfg.RaftAdvertise, s.cfg.RaftBind} {
		if h, _, err := net.SplitHostPort(addr); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	cert, err := ca.IssueNode(s.cfg.NodeID, hosts...)
	if err != nil {
		return nil, err
	}
	if s.nodeToken, err = ca.NodeToken(); err != nil {
		return nil, err
	}
	if s.sealer, err = openSealer(ca); err != nil {
		return nil, err
	}
	server, client := ca.MutualTLS(cert)
	return &cluster.TLS{Server: server, Client: client}, nil
}

// openMesh brings up this node's tunnel when a mesh is configured; the agent
// API on it starts with the rest in serve.
func (s *Server) openMesh() error {
	if s.cfg.Mesh == nil {
		return nil
	}
	m, err := newMesh(s, *s.cfg.Mesh)
	if err != nil {
		return err
	}
	s.mesh = m
	return nil
}

// handler builds the reconciler, the API and the web UI, and returns the
// public listener's handler: the UI under /ui/, calling the API in-process,
// and the API for everything else.
func (s *Server) handler() (http.Handler, error) {
	cfg := s.cfg
	var prober reconcile.Prober
	if s.mesh != nil && !cfg.ReadyOnRegister {
		prober = s.mesh.prober
	}
	metrics := series.New(cfg.MetricsStep, 0, nil)
	s.Reconciler = reconcile.New(reconcile.Config{
		Node: reconcile.ClusterNode(s.Node), TTL: cfg.HeartbeatTTL, Interval: cfg.ReconcileInterval, Logger: s.log, Prober: prober,
		DrainTime: cfg.DrainTime, Usage: metrics,
	})
	s.Scaler = scaler.New(scaler.Config{Node: reconcile.ClusterNode(s.Node), Series: metrics, Logger: s.log})
	s.API = api.New(api.Config{
		Autoscaler: s.Scaler, Usage: metrics,
		DeleteWait: s.Reconciler.DrainTime() + 15*time.Second,
		Node:       api.ClusterNode(s.Node), Blobs: s.Blobs, Metrics: s.Metrics, Logger: s.log, MaxUploadBytes: cfg.MaxUploadBytes,
		ReadyOnRegister: prober == nil, AgentPort: s.agentPort(), Client: &http.Client{Transport: s.transport},
		Heartbeat: s.Reconciler.Heartbeat, LastHeartbeat: s.Reconciler.LastHeartbeat, Logs: s.instanceLogs, NodeToken: s.nodeToken, BodyIdleTimeout: cfg.BodyIdleTimeout,
		OperatorTokenHash: api.HashToken(cfg.OperatorToken), OnRemoved: s.onRemoved, SealCert: s.sealCert,
	})
	webUI, err := ui.New(ui.Config{API: s.API, Logger: s.log, MaxUploadBytes: cfg.MaxUploadBytes, Secure: cfg.TLSCertFile != "",
		LeaderKnown: func() bool { return s.Node.IsLeader() || s.Node.Leader() != "" }})
	if err != nil {
		return nil, err
	}
	root := http.NewServeMux()
	root.Handle(ui.Prefix, api.GuardBody(webUI, cfg.BodyIdleTimeout))
	root.Handle("/", s.API)
	return root, nil
}

// serve starts the public API, the background loops and, with a mesh, the
// agent API on the tunnel.
func (s *Server) serve(handler http.Handler) error {
	s.httpSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.goRun(func() {
		if err := s.httpSrv.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server", "err", err)
		}
	})
	if s.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", s.Metrics)
		s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		s.goRun(func() {
			if err := s.metrics.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics server", "err", err)
			}
		})
	}
	s.goRun(func() { s.Reconciler.Run(ctx) })
	s.goRun(func() { s.Scaler.Run(ctx) })
	s.goRun(func() { s.selfRegisterLoop(ctx) })
	if s.cfg.JoinURL != "" {
		s.goRun(func() { s.joinLoop(ctx) })
	}
	s.goRun(func() { s.replicateLoop(ctx) })
	if err := s.startBenchAgent(ctx); err != nil {
		return err
	}
	if s.mesh != nil {
		return s.mesh.start(ctx)
	}
	return nil
}

// startDNS starts the DNS server when one is configured; its statistics
// join the node's metrics.
func (s *Server) startDNS() error {
	if s.cfg.DNSAddr == "" {
		return nil
	}
	cfg := s.cfg.DNS
	cfg.Source = &dnsserve.StateSource{State: s.Node.FSM.State}
	cfg.Logger = s.log.With("part", "dns")
	d, err := dnsserve.New(cfg)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := d.Start(s.cfg.DNSAddr); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	s.DNS = d
	s.Metrics.Also(d.Stats().WriteMetrics)
	return nil
}

func (s *Server) goRun(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// MetricsURL is the URL of the token-free /metrics listener; "" when off.
func (s *Server) MetricsURL() string {
	if s.metricsLn == nil {
		return ""
	}
	return "http://" + s.metricsLn.Addr().String() + "/metrics"
}

// URL is this node's API base URL.
func (s *Server) URL() string { return s.url }

// Close stops serving and shuts raft down. It also releases a server whose
// Start failed part way, so it checks each part for having been opened.
func (s *Server) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	if s.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			_ = s.httpSrv.Close()
		}
	} else if s.listener != nil {
		_ = s.listener.Close() // not served yet: Shutdown would not close it
	}
	if s.metrics != nil {
		_ = s.metrics.Close()
	} else if s.metricsLn != nil {
		_ = s.metricsLn.Close()
	}
	if s.DNS != nil {
		_ = s.DNS.Close()
	}
	if s.benchAgent != nil {
		_ = s.benchAgent.Close()
	}
	if s.mesh != nil {
		s.mesh.close()
	}
	s.wg.Wait()
	if s.Node == nil {
		return nil
	}
	return s.Node.Close()
}

// clientTLS is the TLS configuration for calls to other core nodes.
func clientTLS(cfg Config) (*tls.Config, error) {
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("server: give both a TLS certificate and a key, or neither")
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("server: TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server: TLS CA file %s holds no PEM certificate", cfg.TLSCAFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// joinLoop asks the existing group to add this node until the node sees
// itself in the raft configuration (bounded by ctx; once per second).
func (s *Server) joinLoop(ctx context.Context) {
	for ctx.Err() == nil {
		servers, err := s.Node.Servers()
		if err == nil {
			for _, srv := range servers {
				if string(srv.ID) == s.cfg.NodeID {
					return
				}
			}
		}
		body := map[string]string{"id": s.cfg.NodeID, "raft_address": s.Node.RaftAddr()}
		if err := s.postJSON(ctx, strings.TrimSuffix(s.cfg.JoinURL, "/")+"/v1/cluster/voters", body); err != nil {
			s.log.Info("join pending", "url", s.cfg.JoinURL, "err", err)
		} else {
			s.log.Info("joined the raft group", "via", s.cfg.JoinURL)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// Pauses of selfRegisterLoop while registration is pending (no leader yet,
// the operator token not replicated yet): short at first, so a new cluster
// settles fast, then longer, so a node without a leader stays quiet.
const (
	selfRegisterRetryMin = 50 * time.Millisecond
	selfRegisterRetryMax = time.Second
	// selfRegisterRecheck re-checks a registered node's record without a
	// state change: a safety net, not a poll.
	selfRegisterRecheck = time.Minute
)

// selfRegisterLoop sets the operator token at bootstrap (leader) and keeps
// this node's CoreNode record current. Once registered it waits for the
// state to change (its record replaced by a restore, say) rather than
// polling: an idle cluster does no work here.
func (s *Server) selfRegisterLoop(ctx context.Context) {
	retry := selfRegisterRetryMin
	var index uint64
	for ctx.Err() == nil {
		if err := s.selfRegister(ctx); err != nil {
			if ctx.Err() == nil {
				s.log.Debug("self registration pending", "err", err, "retry_in", retry)
			}
			select {
			case <-ctx.Done():
			case <-time.After(retry):
			}
			retry = min(2*retry, selfRegisterRetryMax)
			continue
		}
		retry = selfRegisterRetryMin
		wctx, cancel := context.WithTimeout(ctx, selfRegisterRecheck)
		index = s.Node.FSM.Wait(wctx, index).Index
		cancel()
	}
}

func (s *Server) selfRecord() fsm.CoreNode {
	rec := fsm.CoreNode{ID: s.cfg.NodeID, APIURL: s.url, RaftAddr: s.Node.RaftAddr(), Build: version.Get()}
	if s.mesh != nil {
		rec.PublicKey = s.mesh.publicKey()
		rec.MeshEndpoint = s.mesh.cfg.PublicEndpoint
		rec.TunnelAddr = s.mesh.cfg.TunnelAddr
		rec.AgentPort = s.mesh.cfg.AgentPort
	}
	return rec
}

// sameRecord reports whether the stored record a already says what b says;
// UpdatedAt is the FSM's and does not count. Comparing whole structs keeps a
// field added to CoreNode from being missed here.
func sameRecord(a *fsm.CoreNode, b fsm.CoreNode) bool {
	if a == nil {
		return false
	}
	cp := *a
	cp.UpdatedAt = b.UpdatedAt
	return cp == b
}

func (s *Server) selfRegister(ctx context.Context) error {
	st := s.Node.FSM.State()
	if s.Node.IsLeader() && st.OperatorTokenHash == "" {
		res, err := s.Node.Decide(ctx, "", func(st *fsm.State, _ time.Time) (*fsm.Command, error) {
			if st.OperatorTokenHash != "" {
				return nil, nil
			}
			return &fsm.Command{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: api.HashToken(s.cfg.OperatorToken)}, nil
		})
		if err != nil {
			return err
		}
		if res.Err != nil {
			return res.Err
		}
		s.log.Info("operator token set at bootstrap")
	}
	want := s.selfRecord()
	if sameRecord(st.CoreNodes[s.cfg.NodeID], want) {
		return nil
	}
	if s.Node.IsLeader() {
		res, err := s.Node.Decide(ctx, "", func(st *fsm.State, _ time.Time) (*fsm.Command, error) {
			// Checked again on the leader's current state: the one read
			// above may predate the log replayed after a restart, and a
			// record rewritten for nothing is a write every node applies.
			if sameRecord(st.CoreNodes[s.cfg.NodeID], want) {
				return nil, nil
			}
			return &fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &want}, nil
		})
		if err != nil {
			return err
		}
		return res.Err
	}
	if st.OperatorTokenHash == "" {
		return errors.New("waiting for the operator token to replicate")
	}
	// Through our own API, which forwards to the leader.
	return s.postJSON(ctx, s.url+"/v1/internal/core-nodes", want)
}

// postJSON calls another node's (or this node's) API with the node token.
// A node of an older release knows no node token: during a rolling upgrade
// a 401 is retried once with the operator token from the configuration.
func (s *Server) postJSON(ctx context.Context, url string, body any) error {
	req := jsonhttp.Request{Method: http.MethodPost, URL: url, Token: s.nodeToken, Body: body}
	err := jsonhttp.Do(ctx, s.client, req, nil, 1<<20)
	if jsonhttp.StatusOf(err) == http.StatusUnauthorized {
		req.Token = s.cfg.OperatorToken
		err = jsonhttp.Do(ctx, s.client, req, nil, 1<<20)
	}
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	return nil
}

// replicateLoop fetches every app blob the state refers to and this node
// lacks, from the other core nodes.
func (s *Server) replicateLoop(ctx context.Context) {
	rep := &blobs.Replicator{Store: s.Blobs, Client: &http.Client{Transport: s.transport}, Token: s.nodeToken, FallbackToken: s.cfg.OperatorToken, Limit: s.maxUpload(), Log: s.log}
	var index uint64
	var currentSince time.Time
	for ctx.Err() == nil {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st := s.Node.FSM.Wait(wctx, index)
		cancel()
		index = st.Index
		var peers []string
		for _, c := range st.SortedCoreNodes() {
			if c.ID != s.cfg.NodeID && c.APIURL != "" {
				peers = append(peers, c.APIURL)
			}
		}
		missing := false
		s.collectBlobs(st, &currentSince)
		for _, a := range st.SortedApps() {
			for _, digest := range a.Digests() { // every version kept: a rollback may need it
				if s.Blobs.Has(digest) {
					continue
				}
				if err := rep.Fetch(ctx, digest, peers); err != nil {
					missing = true
					s.log.Warn("blob replication", "app", a.Name, "err", err)
					continue
				}
				s.log.Info("replicated blob", "app", a.Name, "digest", digest)
			}
		}
		if missing {
			index = 0 // retry on the next round even without a state change
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// collectBlobs removes blobs no app of st uses (after ten minutes unused),
// but only while this node's state is known to hold every committed write,
// and has for BlobGCSettle: a node alone or catching up after a restart
// holds an empty or old state, and deleting what it does not know of would
// lose images that apps use.
func (s *Server) collectBlobs(st *fsm.State, currentSince *time.Time) {
	if !s.Node.Current() {
		if !currentSince.IsZero() {
			s.log.Info("state not known to be current; blob cleanup paused")
		}
		*currentSince = time.Time{}
		return
	}
	now := time.Now()
	if currentSince.IsZero() {
		*currentSince = now
	}
	settle := s.cfg.BlobGCSettle
	if settle == 0 {
		settle = 30 * time.Second
	}
	if now.Sub(*currentSince) < settle {
		return
	}
	keep := map[string]bool{}
	for _, a := range st.SortedApps() {
		for _, digest := range a.Digests() {
			keep[digest] = true
		}
	}
	if removed, err := s.Blobs.Collect(keep, 10*time.Minute, now); err != nil {
		s.log.Warn("blob cleanup", "err", err)
	} else if len(removed) > 0 {
		s.log.Info("removed blobs no app uses", "digests", removed)
	}
}

// maxUpload is the largest image the API accepts, so the replicator takes
// every blob an upload can have stored.
func (s *Server) maxUpload() int64 {
	if s.cfg.MaxUploadBytes > 0 {
		return s.cfg.MaxUploadBytes
	}
	return api.DefaultMaxUploadBytes
}

func (s *Server) agentPort() uint16 {
	if s.mesh != nil {
		return s.mesh.cfg.AgentPort
	}
	return 0
}

func (s *Server) gauges() []metrics.Gauge {
	st := s.Node.FSM.State()
	state := s.Node.Raft.State().String()
	out := []metrics.Gauge{}
	for _, name := range []string{"Follower", "Candidate", "Leader", "Shutdown"} {
		v := 0.0
		if name == state {
			v = 1
		}
		out = append(out, metrics.Gauge{Name: "potluck_core_raft_state", Help: "Raft state of this node (1 = current).", Labels: map[string]string{"state": name}, Value: v})
	}
	out = append(out,
		metrics.Gauge{Name: "potluck_core_raft_applied_index", Help: "Last raft index applied to the FSM.", Value: float64(s.Node.Raft.AppliedIndex())},
		metrics.Gauge{Name: "potluck_core_raft_last_index", Help: "Last raft log index.", Value: float64(s.Node.Raft.LastIndex())},
	)
	counts := map[fsm.HostStatus]int{}
	for _, h := range st.Hosts {
		counts[h.Status]++
	}
	for _, status := range []fsm.HostStatus{fsm.HostPending, fsm.HostReady, fsm.HostDown, fsm.HostDraining, fsm.HostDecommissioned} {
		out = append(out, metrics.Gauge{Name: "potluck_core_hosts", Help: "Hosts by status.", Labels: map[string]string{"status": string(status)}, Value: float64(counts[status])})
	}
	out = append(out,
		metrics.Gauge{Name: "potluck_core_installations", Help: "Installations.", Value: float64(len(st.Installations))},
		metrics.Gauge{Name: "potluck_core_instances", Help: "Instances.", Value: float64(len(st.Instances))},
	)
	return out
}

// tunnelAddrFor gives core node i (by sorted id) the address 100.64.0.(i+1).
func tunnelAddrFor(id string, peers []cluster.Peer) netip.Addr {
	ids := []string{}
	for _, p := range peers {
		ids = append(ids, p.ID)
	}
	if len(ids) == 0 {
		ids = []string{id}
	}
	sort.Strings(ids)
	for i, p := range ids {
		if p == id {
			return netip.AddrFrom4([4]byte{100, 64, 0, byte(i + 1)})
		}
	}
	return netip.AddrFrom4([4]byte{100, 64, 0, 1})
}

// instanceLogs reaches a Back's logs through this node's mesh.
func (s *Server) instanceLogs(ctx context.Context, h *fsm.Host, instance string, q url.Values) (io.ReadCloser, error) {
	if s.mesh == nil {
		return nil, errors.New("this core node runs without a mesh")
	}
	return s.mesh.logs(ctx, h, instance, q)
}
