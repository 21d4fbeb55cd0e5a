// Command potluck-front is Potluck's public entry point. It runs in one of
// two modes:
//
//   - in a cluster (--core URL --join-token T): it registers with the core as
//     a mesh hub and serves the routes of the installations the core gives
//     it, dialling Backs over the WireGuard mesh;
//   - standalone (--config FILE): it serves the routes of a YAML file over
//     plain TCP, as a drop-in replacement for an NGINX load balancer
//     (docs/front.md).
package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"potluck/agent"
	"potluck/front"
	"potluck/front/standalone"
	"potluck/front/workers"
	"potluck/internal/cli"
	"potluck/internal/debugpprof"
	"potluck/internal/procs"
	"potluck/lb"
)

// flags are potluck-front's settings; each has a POTLUCK_* environment twin.
type flags struct {
	// standalone
	config        string
	check         bool
	watchInterval time.Duration
	// cluster
	cores                  cli.StringList
	joinToken, name        string
	joinTokenFile          string
	coreCA                 string
	endpoint, dataDir      string
	publicURL              string
	region                 string
	meshPort               uint
	listen, admin          string
	cpus                   float64
	memory, disk, maxBody  cli.Size
	connectT, readT, sendT time.Duration
	accessLog              bool
	pipeline               int
	pipelineStall          time.Duration
	adaptProcs             bool
	// HTTPS (cluster)
	httpsListen, acmeCA   string
	acmeEmail, acmeCARoot string
	acmeChallenges        string
	h2Server              string
	https                 *front.HTTPSConfig // built from the above by parseFlags; nil: no --https-listen
	// both
	shutdownTimeout     time.Duration
	logLevel, logFormat string
	pprof               bool
	// gcPercent is Go's GOGC for this process; gcSet: applied (given as a
	// flag or its twin, or GOGC is not set).
	gcPercent int
	gcSet     bool
}

// defaultGCPercent lets the heap grow to 4× the live data between
// collections: a proxy's live heap is small and collections were 12 % of
// the Front's CPU (39 → 34 µs per HTTP/1.1 request and 75 → 66 µs per h2
// request over TLS at 400 against Go's 100, docs/benchmarks.md).
const defaultGCPercent = 400

func parseFlags(args []string, env cli.Env) (*flags, error) {
	f := &flags{memory: 256 << 20, disk: 1 << 30}
	fs := cli.NewFlagSet("potluck-front", `Usage: potluck-front --core URL --join-token-file FILE --endpoint HOST:PORT [flags]
       potluck-front --config FILE [flags]

Runs a Front: in a cluster it registers with the core, joins the mesh as a hub
and serves the installations' domains on --listen, balancing over their Backs
(round robin, max_fails=1, fail_timeout=20s, as NGINX). Standalone it serves the
routes of a YAML file over plain TCP, a drop-in replacement for NGINX.`, "See docs/front.md and docs/operations.md.")
	fs.StringVar(&f.config, "config", "", "standalone: YAML file with listeners, routes, health, timeouts and admin address (docs/front.md)")
	fs.BoolVar(&f.check, "check", false, "standalone: validate the config file, print the result and exit")
	fs.DurationVar(&f.watchInterval, "watch-interval", 2*time.Second, "standalone: how often to check the config file for changes; 0 = reload on SIGHUP only")
	fs.Var(&f.cores, "core", "cluster: core node public API URL, e.g. http://10.0.0.5:8400 (repeat or comma-separate)")
	fs.StringVar(&f.joinToken, "join-token", "", "cluster: join token from the operator (potluck tokens create); prefer --join-token-file")
	fs.StringVar(&f.coreCA, "core-ca", "", "cluster: PEM file of the CA that signed the core API's TLS certificate (https --core URLs with a private CA; default: system roots)")
	fs.StringVar(&f.joinTokenFile, "join-token-file", "", "cluster: file holding the join token (wins over --join-token; keeps it out of the process list)")
	fs.StringVar(&f.name, "name", hostname(), "cluster: host name, unique in the cluster")
	fs.StringVar(&f.endpoint, "endpoint", "", "cluster: this Front's public WireGuard address host:port, reachable by Backs (UDP, --mesh-port)")
	fs.StringVar(&f.region, "region", "", "cluster: where this Front is, as the operator names regions (e.g. eu-west): the core's DNS answers clients nearest first by it (docs/dns.md)")
	fs.StringVar(&f.publicURL, "public-url", "", "cluster: where clients reach this Front, http(s)://host[:port], shown to app owners for their DNS (default: http:// + the --endpoint host + the --listen port)")
	fs.UintVar(&f.meshPort, "mesh-port", 51820, "cluster: WireGuard UDP listen port")
	fs.StringVar(&f.listen, "listen", ":80", "cluster: client HTTP listen address")
	fs.StringVar(&f.admin, "admin", "127.0.0.1:9080", "cluster: /metrics, /status and /healthz listen address (empty: off)")
	fs.StringVar(&f.dataDir, "data-dir", "potluck-front-data", "cluster: directory for the WireGuard key (0600), identity and last good routes")
	fs.Float64Var(&f.cpus, "cpus", 1, "cluster: CPUs declared to the core")
	fs.Var(&f.memory, "memory", "cluster: memory declared to the core, e.g. 256MiB")
	fs.Var(&f.disk, "disk", "cluster: disk declared to the core, e.g. 1GiB")
	fs.DurationVar(&f.connectT, "connect-timeout", 5*time.Second, "cluster: backend connect timeout (a dead peer over the tunnel never refuses)")
	fs.DurationVar(&f.readT, "read-timeout", 60*time.Second, "cluster: backend read timeout (proxy_read_timeout)")
	fs.DurationVar(&f.sendT, "send-timeout", 60*time.Second, "cluster: backend send timeout (proxy_send_timeout)")
	fs.Var(&f.maxBody, "max-body", "cluster: largest request body accepted, e.g. 100MiB (0: lb's default)")
	fs.BoolVar(&f.accessLog, "access-log", false, "cluster: log one line per request")
	fs.IntVar(&f.pipeline, "pipeline", front.DefaultPipeline, "cluster: pipelined HTTP/1.1 connections per instance on Backs that run the HTTP gateway (0: the keep-alive pool only, as NGINX; docs/meshnet.md)")
	fs.BoolVar(&f.adaptProcs, "adapt-procs", true, "cluster: run on one P (GOMAXPROCS 1) while the Front uses under 0.7 of a core, on all of them once that one is nearly saturated or the mesh carries 32 MiB/s or more (a stream): fewer thread wake-ups per packet through the mesh (docs/meshnet.md; setting GOMAXPROCS turns it off)")
	fs.DurationVar(&f.pipelineStall, "pipeline-stall", lb.DefaultPipelineStall, "cluster: a pipelined connection whose oldest request has waited this long takes no new ones; they go over the keep-alive pool")
	fs.StringVar(&f.httpsListen, "https-listen", "", "cluster: client HTTPS listen address, e.g. :443, for installations with HTTPS (empty: off; docs/https.md)")
	fs.StringVar(&f.acmeCA, "acme-ca", "", "cluster: ACME directory URL certificates are obtained from (default: Let's Encrypt); use the same on every Front")
	fs.StringVar(&f.acmeEmail, "acme-email", "", "cluster: contact address of the ACME account (expiry notices)")
	fs.StringVar(&f.acmeCARoot, "acme-ca-root", "", "cluster: PEM file of the roots the ACME CA's own API is verified with (a private or test CA; default: system roots)")
	fs.StringVar(&f.acmeChallenges, "acme-challenges", "http-01,tls-alpn-01", "cluster: ACME challenge types to use: http-01 (needs --listen on port 80), tls-alpn-01 (needs --https-listen on 443)")
	fs.StringVar(&f.h2Server, "h2-server", "", `cluster: HTTP/2 server of --https-listen: "native" (the Front's own, front/h2) or "go" (Go's x/net/http2); default: `+string(front.DefaultH2Server)+` (standalone: tls.h2_server in the config file)`)
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long to drain in-flight requests and WebSockets")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&f.pprof, "pprof", false, "serve /debug/pprof/ on the admin listener")
	fs.IntVar(&f.gcPercent, "gc-percent", defaultGCPercent, "heap growth before a garbage collection, as Go's GOGC (400: less CPU per request for 4x the live heap; GOGC, when set, wins over the default)")
	if err := fs.Parse(args, env); err != nil {
		return nil, err
	}
	_, gogc := env.Lookup("GOGC")
	f.gcSet = !gogc
	fs.Visit(func(fl *flag.Flag) { f.gcSet = f.gcSet || fl.Name == "gc-percent" })
	var errs []error
	switch {
	case f.config != "" && len(f.cores) > 0:
		errs = append(errs, errors.New("--config (standalone) and --core (cluster) exclude each other"))
	case f.config == "" && len(f.cores) == 0:
		errs = append(errs, errors.New("--config (or POTLUCK_CONFIG) is required to run standalone; or give --core (POTLUCK_CORE) to join a cluster"))
	case len(f.cores) > 0 && f.endpoint == "":
		errs = append(errs, errors.New("--endpoint is required in a cluster: the public host:port Backs send WireGuard packets to"))
	case f.meshPort > 65535:
		errs = append(errs, fmt.Errorf("--mesh-port %d is not a port", f.meshPort))
	case f.pipeline < 0 || f.pipeline > 64:
		errs = append(errs, fmt.Errorf("--pipeline %d: 0 (off) to 64", f.pipeline))
	case f.pipelineStall < time.Millisecond || f.pipelineStall > time.Minute:
		errs = append(errs, fmt.Errorf("--pipeline-stall %s: 1ms to 1m", f.pipelineStall))
	case f.gcPercent < 25 || f.gcPercent > 10000:
		errs = append(errs, fmt.Errorf("--gc-percent %d: 25 to 10000", f.gcPercent))
	}
	if len(f.cores) > 0 && f.endpoint != "" {
		if u, err := publicURL(f.publicURL, f.endpoint, f.listen); err != nil {
			errs = append(errs, err)
		} else {
			f.publicURL = u
		}
	}
	if _, err := cli.Logger(io.Discard, f.logLevel, f.logFormat); err != nil {
		errs = append(errs, err)
	}
	if f.httpsListen != "" {
		https, err := httpsConfig(f)
		if err != nil {
			errs = append(errs, err)
		}
		f.https = https
	}
	if len(errs) > 0 {
		return nil, &cli.UsageError{Err: errors.Join(errs...)}
	}
	token, err := cli.Secret(f.joinToken, f.joinTokenFile, "join-token-file")
	if err != nil {
		return nil, err
	}
	f.joinToken = token
	return f, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func run(ctx context.Context, args []string, env cli.Env) int {
	f, err := parseFlags(args, env)
	if err != nil {
		return cli.Exit(env.Stderr, "potluck-front", err)
	}
	log, _ := cli.Logger(env.Stderr, f.logLevel, f.logFormat)
	if f.gcSet {
		debug.SetGCPercent(f.gcPercent)
	}
	if f.config != "" {
		return runStandalone(ctx, f, args, log, env)
	}
	err = runCluster(ctx, f, log)
	if errors.Is(err, agent.ErrDecommissioned) {
		err = cli.WithExitCode(agent.ExitDecommissioned, err)
	}
	return cli.Exit(env.Stderr, "potluck-front", err)
}

func runStandalone(ctx context.Context, f *flags, args []string, log *slog.Logger, env cli.Env) int {
	if f.check {
		cfg, _, err := standalone.Load(f.config)
		if err != nil {
			fmt.Fprintf(env.Stderr, "potluck-front: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "%s: OK (%d listeners, %d routes, %d workers)\n", f.config, len(cfg.Listen)+len(cfg.TLSListen), len(cfg.Routes), cfg.Workers)
		return 0
	}
	opts := standalone.RunOptions{
		ConfigPath: f.config, Logger: log, WatchInterval: f.watchInterval,
		ShutdownTimeout: f.shutdownTimeout, Pprof: f.pprof,
	}
	in, isWorker, err := workers.Inherit(env.Lookup)
	switch {
	case err != nil:
		log.Error("cannot start worker", "err", err)
		return 1
	case isWorker:
		opts.Logger = log.With("worker", in.Worker)
		opts.Sockets = &standalone.Sockets{Listeners: in.Listeners, TLSListeners: in.TLSListeners, Admin: in.Admin,
			TicketKeys: in.TicketKeys}
	default:
		cfg, _, err := standalone.Load(f.config)
		if err != nil {
			log.Error("cannot start", "err", err)
			return 1
		}
		if cfg.Workers > 1 {
			return runMaster(ctx, f, args, cfg, log)
		}
	}
	s, err := standalone.Start(opts)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := s.Run(ctx); err != nil {
		opts.Logger.Error("shutdown", "err", err)
		return 1
	}
	opts.Logger.Info("stopped")
	return 0
}

// runMaster runs a standalone Front of cfg.Workers processes: this one
// holds the sockets and supervises workers, each this same command.
func runMaster(ctx context.Context, f *flags, args []string, cfg *standalone.Config, log *slog.Logger) int {
	exe, err := os.Executable()
	if err != nil {
		log.Error("cannot start workers", "err", err)
		return 1
	}
	var listeners []workers.Listener
	for _, addr := range cfg.Listen {
		listeners = append(listeners, workers.Listener{Addr: addr})
	}
	for _, addr := range cfg.TLSListen {
		listeners = append(listeners, workers.Listener{Addr: addr, TLS: true})
	}
	m, err := workers.Start(workers.Config{
		Workers: cfg.Workers, Listeners: listeners, Admin: cfg.Admin, Pprof: f.pprof,
		Command:         func() *exec.Cmd { return exec.Command(exe, args...) },
		ShutdownTimeout: f.shutdownTimeout,
		// Only validates: each worker's reload warns about what needs a
		// restart (standalone.Server.Reload).
		Reload: func() error { _, _, err := standalone.Load(f.config); return err },
		Logger: log,
	})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	m.Run(ctx)
	log.Info("stopped")
	return 0
}

func runCluster(ctx context.Context, f *flags, log *slog.Logger) error {
	https := f.https
	fr, err := front.Start(ctx, front.Config{
		Agent: agent.Config{
			CoreURLs: f.cores, CoreCAFile: f.coreCA, JoinToken: f.joinToken, Name: f.name, CPUs: f.cpus,
			MemoryMB: int64(f.memory) >> 20, DiskMB: int64(f.disk) >> 20,
			Endpoint: f.endpoint, PublicURL: f.publicURL, Region: f.region, DataDir: f.dataDir, MeshPort: uint16(f.meshPort),
		},
		Proxy: lb.Options{
			Timeouts:    lb.Timeouts{Connect: f.connectT, Read: f.readT, Send: f.sendT},
			MaxBodySize: int64(f.maxBody), AccessLog: f.accessLog, PipelineStall: f.pipelineStall,
		},
		Pipeline: cmp.Or(f.pipeline, -1), // 0: off
		Logger:   log,
		HTTPS:    https,
	})
	if err != nil {
		return err
	}
	if f.adaptProcs {
		go procs.Run(ctx, procs.Config{Work: fr.Agent().Node().TunnelBytes, Logger: log})
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		fr.Shutdown(context.Background())
		return fmt.Errorf("--listen: %w", err)
	}
	go func() {
		if err := fr.Serve(ln); err != nil {
			log.Error("listener stopped", "err", err)
		}
	}()
	log.Info("serving", "addr", ln.Addr().String())
	if https != nil {
		tln, err := net.Listen("tcp", f.httpsListen)
		if err != nil {
			fr.Shutdown(context.Background())
			return fmt.Errorf("--https-listen: %w", err)
		}
		go func() {
			if err := fr.ServeTLS(tln); err != nil {
				log.Error("HTTPS listener stopped", "err", err)
			}
		}()
		log.Info("serving HTTPS", "addr", tln.Addr().String(), "acme_ca", https.ACMEDirectory)
	}
	if f.admin != "" {
		aln, err := net.Listen("tcp", f.admin)
		if err != nil {
			fr.Shutdown(context.Background())
			return fmt.Errorf("--admin: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/", fr.AdminHandler())
		if f.pprof {
			debugpprof.Register(mux)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(aln)
		defer srv.Close()
		log.Info("admin listening", "addr", aln.Addr().String())
	}
	runErr := fr.Run(ctx)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	if err := fr.Shutdown(sctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	if errors.Is(runErr, agent.ErrDecommissioned) {
		return fmt.Errorf("%w (delete --data-dir to join again as a new host)", runErr)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	log.Info("stopped")
	return nil
}

func main() {
	if err := procs.KeepSysmonAwake(); err != nil { // re-executes the process, or returns
		fmt.Fprintln(os.Stderr, "potluck-front: warning:", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], cli.OS()))
}

// publicURL is the Front's public URL: given (checked), or made of the
// --endpoint host (the machine's public address) and the --listen port.
func publicURL(given, endpoint, listen string) (string, error) {
	if given != "" {
		u, err := url.Parse(given)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return "", fmt.Errorf("--public-url %q: want http(s)://host[:port], e.g. http://203.0.113.9", given)
		}
		return strings.TrimSuffix(given, "/"), nil
	}
	host, _, err := net.SplitHostPort(endpoint)
	if err != nil {
		return "", fmt.Errorf("--endpoint %q: want host:port", endpoint)
	}
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: want [host]:port", listen)
	}
	u := "http://" + net.JoinHostPort(host, port)
	if port == "80" {
		u = "http://" + host
		if strings.Contains(host, ":") {
			u = "http://[" + host + "]"
		}
	}
	return u, nil
}

// httpsConfig is the Front's HTTPS settings from its flags.
func httpsConfig(f *flags) (*front.HTTPSConfig, error) {
	c := &front.HTTPSConfig{ACMEDirectory: f.acmeCA, Email: f.acmeEmail}
	kind, err := front.ParseH2Server(f.h2Server)
	if err != nil {
		return nil, fmt.Errorf("--h2-server: %w", err)
	}
	c.H2Server = kind
	host, port, err := net.SplitHostPort(f.httpsListen)
	if err != nil {
		return nil, fmt.Errorf("--https-listen %q: want [host]:port", f.httpsListen)
	}
	if c.HTTPSPort, err = strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("--https-listen %q: bad port", f.httpsListen)
	}
	_, hport, err := net.SplitHostPort(f.listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want [host]:port", f.listen)
	}
	if c.HTTPPort, err = strconv.Atoi(hport); err != nil {
		return nil, fmt.Errorf("--listen %q: bad port", f.listen)
	}
	c.ListenHost = host
	if f.acmeCA != "" {
		if u, err := url.Parse(f.acmeCA); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("--acme-ca %q: want the https:// URL of an ACME directory", f.acmeCA)
		}
	}
	if f.acmeCARoot != "" {
		pem, err := os.ReadFile(f.acmeCARoot)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca-root: %w", err)
		}
		c.ACMERoots = x509.NewCertPool()
		if !c.ACMERoots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--acme-ca-root %s: no PEM certificate in it", f.acmeCARoot)
		}
	}
	c.DisableHTTP01, c.DisableTLSALPN01 = true, true
	for _, ch := range strings.Split(f.acmeChallenges, ",") {
		switch strings.TrimSpace(ch) {
		case "http-01":
			c.DisableHTTP01 = false
		case "tls-alpn-01":
			c.DisableTLSALPN01 = false
		case "":
		default:
			return nil, fmt.Errorf("--acme-challenges: %q is not http-01 or tls-alpn-01", ch)
		}
	}
	if c.DisableHTTP01 && c.DisableTLSALPN01 {
		return nil, errors.New("--acme-challenges: give http-01, tls-alpn-01 or both")
	}
	return c, nil
}
