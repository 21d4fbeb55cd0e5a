// Command potluck-core runs one node of Potluck's control plane: a member of
// the raft group that serves the public API, the agent API on its tunnel
// address, and acts as a WireGuard mesh hub for every host.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"potluck/core/api"
	"potluck/core/blobs"
	"potluck/core/cluster"
	"potluck/core/pki"
	"potluck/core/reconcile"
	"potluck/core/server"
	"potluck/internal/cli"
)

type options struct {
	nodeID, dataDir, raftBind, raftAdvertise, peers string
	join                                            string
	tlsCert, tlsKey, tlsCA                          string
	clusterCA                                       string
	httpAddr, advertiseURL, metricsListen           string
	operatorToken, operatorTokenFile                string
	heartbeatTTL, reconcileInterval                 time.Duration
	metricsStep                                     time.Duration
	maxUploadMB, maxImageUnpackedMB                 int64
	bodyTimeout                                     time.Duration
	mesh                                            bool
	meshKeyFile, meshEndpoint, tunnelAddress        string
	meshPort, agentPort, probePort                  uint
	fastRaft                                        bool
	benchAgentListen                                string
	logLevel, logFormat                             string
	dns                                             dnsOptions
}

func main() {
	env := cli.OS()
	os.Exit(cli.Exit(env.Stderr, "potluck-core", run(os.Args[1:], env)))
}

func newFlags(o *options) *cli.FlagSet {
	fs := cli.NewFlagSet("potluck-core", "Usage: potluck-core [flags]\n       potluck-core ca init --out DIR\n       potluck-core snapshot save|restore --addr URL --token-file F FILE\n\nRuns one Potluck control-plane node.", "See docs/operations.md for one- and three-node setups.")
	fs.StringVar(&o.nodeID, "id", "core1", "raft server id of this node (stable across restarts)")
	fs.StringVar(&o.dataDir, "data-dir", "potluck-core-data", "directory for raft.db, snapshots, blobs and the mesh key")
	fs.StringVar(&o.raftBind, "raft-bind", "127.0.0.1:8401", "TCP address raft listens on")
	fs.StringVar(&o.raftAdvertise, "raft-advertise", "", "raft address other core nodes dial (default: --raft-bind)")
	fs.StringVar(&o.peers, "peers", "", "bootstrap voters, identical on every node: id=host:port,id=host:port (empty: a one-node group)")
	fs.StringVar(&o.join, "join", "", "instead of --peers: API URL of a running core node; on first start this node asks the group to add it as a voter (needs --tunnel-address with the mesh)")
	fs.StringVar(&o.httpAddr, "http", "127.0.0.1:8400", "public API listen address")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve GET /metrics without a token on this address, e.g. 127.0.0.1:8402 (keep it on loopback or a private network; empty: off; the public API serves /metrics to the operator token)")
	fs.StringVar(&o.advertiseURL, "advertise-url", "", "public API URL other core nodes use to reach this node (default: http://<--http>)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate for the public API (with --tls-key the API is HTTPS only)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA bundle this node trusts when it calls other core nodes over HTTPS (default: system roots)")
	fs.StringVar(&o.clusterCA, "cluster-ca", "", "directory with the cluster CA (ca.crt, ca.key from `potluck-core ca init`) that raft's mutual TLS trusts; required with --peers or --join (default for a one-node group: <data-dir>/cluster-ca, created)")
	fs.StringVar(&o.operatorToken, "operator-token", "", "operator bearer token (prefer --operator-token-file or the environment); at least 16 characters")
	fs.StringVar(&o.operatorTokenFile, "operator-token-file", "", "file holding the operator token")
	fs.DurationVar(&o.heartbeatTTL, "heartbeat-ttl", reconcile.DefaultTTL, "a host that sends no heartbeat for this long is down and its instances are rescheduled")
	fs.DurationVar(&o.reconcileInterval, "reconcile-interval", time.Second, "how often the leader checks heartbeats, probes new hosts and repairs placements")
	fs.DurationVar(&o.metricsStep, "metrics-step", time.Minute, "length of one point of the installations' metrics and how often the autoscaler decides (the autoscaler's minute)")
	fs.Int64Var(&o.maxUploadMB, "max-upload-mb", 2048, "largest image tarball accepted, in MiB")
	fs.Int64Var(&o.maxImageUnpackedMB, "max-image-unpacked", blobs.DefaultMaxUncompressed>>20, "largest size an uploaded image may unpack to on a Back, in MiB (its layers counted at upload; a larger one is refused with 413)")
	fs.DurationVar(&o.bodyTimeout, "body-timeout", api.DefaultBodyIdleTimeout, "longest wait for the next bytes of a request body on the public API (a client that stalls longer is cut off)")
	fs.BoolVar(&o.mesh, "mesh", true, "run a WireGuard mesh node and the agent API (false: development without agents; hosts are Ready at registration)")
	fs.StringVar(&o.meshKeyFile, "mesh-key-file", "", "WireGuard private key file, created with mode 0600 if missing (default: <data-dir>/mesh.key)")
	fs.UintVar(&o.meshPort, "mesh-port", 51820, "WireGuard UDP listen port")
	fs.StringVar(&o.meshEndpoint, "mesh-endpoint", "", "public host:port of the WireGuard port, given to hosts (default: 127.0.0.1:<mesh-port>)")
	fs.StringVar(&o.tunnelAddress, "tunnel-address", "", "this node's tunnel address (default: 100.64.0.N, N = position of --id in the sorted --peers)")
	fs.UintVar(&o.agentPort, "agent-port", server.DefaultAgentPort, "agent API TCP port on the tunnel address")
	fs.UintVar(&o.probePort, "probe-port", server.DefaultProbePort, "port on a host's tunnel address the core probes (GET /healthz) before the host is Ready")
	dnsFlags(fs, &o.dns)
	fs.StringVar(&o.benchAgentListen, "bench-agent-listen", "", "benchmarks only (potluck-bench fleet): also serve the agent API and /debug/pprof/ on this loopback address, callers named by the X-Potluck-Bench-Key header (anyone local may speak for any host); empty: off")
	fs.BoolVar(&o.fastRaft, "fast-raft", false, "short raft timeouts (all nodes on one machine; development only)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	return fs
}

func run(args []string, env cli.Env) error {
	if len(args) > 0 && args[0] == "ca" {
		return runCA(args[1:], env)
	}
	if len(args) > 0 && args[0] == "snapshot" {
		return runSnapshot(args[1:], env)
	}
	var o options
	fs := newFlags(&o)
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	for _, p := range []struct {
		flag string
		port uint
	}{{"--mesh-port", o.meshPort}, {"--agent-port", o.agentPort}, {"--probe-port", o.probePort}} {
		if p.port > 65535 {
			return cli.Usagef("%s %d: a port is at most 65535", p.flag, p.port)
		}
	}
	logger, err := cli.Logger(env.Stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}

	token, err := cli.Secret(o.operatorToken, o.operatorTokenFile, "operator-token-file")
	if err != nil {
		return err
	}
	if token == "" {
		return cli.Usagef("an operator token is required: --operator-token-file or POTLUCK_OPERATOR_TOKEN (see docs/operations.md)")
	}
	if o.maxImageUnpackedMB <= 0 || o.bodyTimeout <= 0 {
		return cli.Usagef("--max-image-unpacked and --body-timeout must be positive")
	}
	peers, err := cluster.ParsePeers(o.peers)
	if err != nil {
		return &cli.UsageError{Err: fmt.Errorf("--peers: %w", err)}
	}
	if o.join != "" && len(peers) > 0 {
		return cli.Usagef("use either --peers (bootstrap) or --join (add to a running group), not both")
	}
	cfg := server.Config{
		NodeID: o.nodeID, DataDir: o.dataDir, RaftBind: o.raftBind, RaftAdvertise: o.raftAdvertise, Peers: peers, JoinURL: o.join,
		HTTPAddr: o.httpAddr, AdvertiseURL: o.advertiseURL, MetricsAddr: o.metricsListen, OperatorToken: token,
		TLSCertFile: o.tlsCert, TLSKeyFile: o.tlsKey, TLSCAFile: o.tlsCA,
		HeartbeatTTL: o.heartbeatTTL, ReconcileInterval: o.reconcileInterval, MetricsStep: o.metricsStep, MaxUploadBytes: o.maxUploadMB << 20,
		MaxImageUnpacked: o.maxImageUnpackedMB << 20, BodyIdleTimeout: o.bodyTimeout,
		BenchAgentAddr: o.benchAgentListen, Logger: logger,
	}
	if cfg.DNSAddr, cfg.DNS, err = o.dns.config(); err != nil {
		return err
	}
	if o.clusterCA != "" {
		ca, err := pki.Load(o.clusterCA)
		if err != nil {
			return fmt.Errorf("--cluster-ca: %w", err)
		}
		cfg.ClusterCA = ca
	} else if len(peers) > 1 || o.join != "" {
		return cli.Usagef("--cluster-ca is required with --peers or --join: raft between core nodes is mutual TLS (create the CA once with `potluck-core ca init --out DIR`)")
	}
	if o.fastRaft {
		cfg.Timing = cluster.FastTiming
	}
	if o.mesh {
		mc := &server.MeshConfig{
			KeyFile: o.meshKeyFile, ListenPort: uint16(o.meshPort), PublicEndpoint: o.meshEndpoint,
			AgentPort: uint16(o.agentPort), ProbePort: uint16(o.probePort),
		}
		if mc.KeyFile == "" {
			mc.KeyFile = filepath.Join(o.dataDir, "mesh.key")
		}
		if o.tunnelAddress != "" {
			a, err := netip.ParseAddr(o.tunnelAddress)
			if err != nil {
				return &cli.UsageError{Err: fmt.Errorf("--tunnel-address: %w", err)}
			}
			mc.TunnelAddr = a
		}
		if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
			return err
		}
		cfg.Mesh = mc
	}
	srv, err := server.Start(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-srv.Removed():
		logger.Warn("this node was removed from the cluster; exiting (see docs/operations.md, Membership)")
	}
	return srv.Close()
}
