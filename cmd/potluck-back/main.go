// Command potluck-back runs a Back: a worker on a lent machine that runs the
// app containers the core places on it and exposes them over the mesh to
// their installation's Fronts.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"potluck/agent"
	"potluck/back"
	"potluck/back/engine"
	"potluck/internal/cli"
	"potluck/internal/debugpprof"
	"potluck/internal/procs"
)

func main() {
	env := cli.OS()
	if err := procs.KeepSysmonAwake(); err != nil { // re-executes the process, or returns
		fmt.Fprintln(env.Stderr, "potluck-back: warning:", err)
	}
	os.Exit(cli.Exit(env.Stderr, "potluck-back", run(os.Args[1:], env)))
}

func run(args []string, env cli.Env) error {
	fs := cli.NewFlagSet("potluck-back", `Usage: potluck-back --core URL --join-token-file FILE [flags]

Runs a Back: registers with the core, joins the mesh (behind NAT is fine), runs
the app containers placed on this host through the Docker Engine on ports
5000-6000 published on 127.0.0.1, and exposes each on its tunnel address to
the Fronts of its installation only.`, "See docs/operations.md.")
	var cores cli.StringList
	fs.Var(&cores, "core", "core node public API URL, e.g. http://127.0.0.1:8400 (repeat or comma-separate for several)")
	token := fs.String("join-token", "", "join token from the operator (potluck tokens create); prefer --join-token-file")
	coreCA := fs.String("core-ca", "", "PEM file of the CA that signed the core API's TLS certificate (https --core URLs with a private CA; default: system roots)")
	tokenFile := fs.String("join-token-file", "", "file holding the join token (wins over --join-token; keeps it out of the process list)")
	name := fs.String("name", hostname(), "host name, unique in the cluster")
	cpus := fs.Float64("cpus", 1, "CPUs granted to Potluck (e.g. 2 or 0.5)")
	memory := cli.Size(512 << 20)
	fs.Var(&memory, "memory", "memory granted, e.g. 512MiB")
	disk := cli.Size(1 << 30)
	fs.Var(&disk, "disk", "disk granted for images, e.g. 1GiB")
	region := fs.String("region", "", "where this Back is, as the operator names regions (e.g. eu-west): placement may spread instances by it")
	dataDir := fs.String("data-dir", "potluck-back-data", "directory for the WireGuard key (0600), identity, last desired state and image cache")
	meshPort := fs.Uint("mesh-port", 0, "WireGuard UDP port (0 picks one; a Back behind NAT needs no fixed port)")
	dockerHost := fs.String("docker-host", "", "Docker Engine address (default: DOCKER_HOST or unix:///var/run/docker.sock)")
	publishIP := fs.String("publish-ip", "127.0.0.1", "loopback address containers are published on (Backs sharing a machine each need their own, e.g. 127.0.0.2)")
	heartbeat := fs.Duration("heartbeat", 5*time.Second, "how often to report state to the core")
	metricsAddr := fs.String("metrics", "127.0.0.1:9190", "address of /metrics, /status and /healthz (empty: off)")
	networkPool := fs.String("network-pool", engine.DefaultNetworkPool.String(), "prefix the installations' Docker networks are carved from (keep it inside 198.18.0.0/15 unless it clashes with something)")
	subnetBits := fs.Int("subnet-bits", engine.DefaultSubnetBits, "prefix length of one installation's network on this host (28: 13 containers)")
	pidsLimit := fs.Int64("pids-limit", engine.DefaultPidsLimit, "most processes one container may run")
	diskReserve := cli.Size(back.DefaultDiskReserve)
	fs.Var(&diskReserve, "disk-reserve", "disk left free under Docker's data root when loading images, e.g. 512MiB")
	imageKeep := fs.Duration("image-keep", back.DefaultImageKeep, "how long an image no instance uses stays loaded (scaled in and out again within it: no new download)")
	hostFirewall := fs.Bool("host-firewall", true, "install the iptables rules that keep containers away from this host and its LAN (false: the operator manages them; see docs/security.md)")
	rawRelay := fs.Bool("raw-relay", false, "relay the Fronts' tunnel connections to the containers byte for byte instead of through the HTTP gateway (which lets Fronts pipeline safely; docs/meshnet.md)")
	adaptProcs := fs.Bool("adapt-procs", true, "run on one P (GOMAXPROCS 1) while the Back uses under 0.7 of a core, on all of them once that one is nearly saturated or the mesh carries 32 MiB/s or more (a stream): fewer thread wake-ups per forwarded packet (docs/meshnet.md; setting GOMAXPROCS turns it off)")
	profiling := fs.Bool("pprof", false, "serve /debug/pprof/ on the --metrics listener (CPU profiles of the forwarding path)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args, env); err != nil {
		return err
	}
	log, err := cli.Logger(env.Stderr, *logLevel, *logFormat)
	if err != nil {
		return err
	}
	if *meshPort > 65535 {
		return cli.Usagef("--mesh-port %d is not a port", *meshPort)
	}
	pubIP, err := netip.ParseAddr(*publishIP)
	if err != nil {
		return &cli.UsageError{Err: fmt.Errorf("--publish-ip: %w", err)}
	}
	pool, err := netip.ParsePrefix(*networkPool)
	if err != nil {
		return &cli.UsageError{Err: fmt.Errorf("--network-pool: %w", err)}
	}
	if err := engine.ValidateNetworkPool(pool, *subnetBits); err != nil {
		return &cli.UsageError{Err: fmt.Errorf("--network-pool, --subnet-bits: %w", err)}
	}
	if *pidsLimit < 16 {
		return cli.Usagef("--pids-limit %d: at least 16", *pidsLimit)
	}
	joinToken, err := cli.Secret(*token, *tokenFile, "join-token-file")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	b, err := back.Start(ctx, back.Config{
		Agent: agent.Config{
			CoreURLs: cores, CoreCAFile: *coreCA, JoinToken: joinToken, Name: *name, CPUs: *cpus,
			MemoryMB: int64(memory) >> 20, DiskMB: int64(disk) >> 20, DataDir: *dataDir, MeshPort: uint16(*meshPort),
			Region: *region,
		},
		DockerHost: *dockerHost, PublishIP: pubIP, Heartbeat: *heartbeat, Logger: log,
		NetworkPool: pool, SubnetBits: *subnetBits, PidsLimit: *pidsLimit, DiskReserve: int64(diskReserve), ImageKeep: *imageKeep,
		SkipHostFirewall: !*hostFirewall, RawRelay: *rawRelay,
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if *adaptProcs {
		go procs.Run(ctx, procs.Config{Work: b.Agent().Node().TunnelBytes, Logger: log})
	}
	if *metricsAddr != "" {
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/", b.AdminHandler())
		if *profiling {
			debugpprof.Register(mux)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	err = b.Run(ctx)
	if errors.Is(err, agent.ErrDecommissioned) {
		return cli.WithExitCode(agent.ExitDecommissioned, fmt.Errorf("%w; its containers are removed (delete --data-dir to join again as a new host)", err))
	}
	if errors.Is(err, context.Canceled) {
		log.Info("stopping; containers keep running")
		return nil
	}
	return err
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
