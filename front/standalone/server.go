package standalone

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"syscall"
	"time"

	"potluck/front"
	"potluck/internal/debugpprof"
	"potluck/lb"
)

// RunOptions configure a standalone Front.
type RunOptions struct {
	// ConfigPath is the YAML file.
	ConfigPath string
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
	// WatchInterval is how often the file is checked for changes; 0 disables.
	WatchInterval time.Duration
	// ShutdownTimeout bounds draining on stop.
	ShutdownTimeout time.Duration
	// Pprof serves /debug/pprof/ on the admin listener.
	Pprof bool
	// Dialer overrides the TCP dialer (tests, or a meshnet node).
	Dialer lb.Dialer
	// Sockets, when set, are served instead of opening the config's
	// addresses: a worker's, inherited from its master (front/workers).
	Sockets *Sockets
}

// Sockets are listeners opened by someone else: Listeners for listen,
// TLSListeners for tls.listen, Admin for admin (nil: none).
type Sockets struct {
	Listeners, TLSListeners []net.Listener
	Admin                   net.Listener
	// TicketKeys, if set, gives the TLS session ticket keys at a time
	// (newest first), shared with the other processes serving the same
	// sockets; it is called again every ticketKeyRefresh.
	TicketKeys func(time.Time) [][32]byte
}

// ticketKeyRefresh is how often Sockets.TicketKeys is asked again: the keys
// it gives rotate daily (front/workers).
const ticketKeyRefresh = time.Hour

// Server is a running standalone Front.
type Server struct {
	opts      RunOptions
	log       *slog.Logger
	proxy     *lb.Proxy
	listeners []net.Listener
	// tls serves tlsListeners (config tls:); nil without.
	tls          *front.TLSServer
	tlsListeners []net.Listener
	admin        *http.Server
	adminLn      net.Listener

	mu      sync.Mutex // guards cfg and raw during reloads
	cfg     *Config
	raw     []byte
	serving sync.WaitGroup
	hup     chan os.Signal
	// stopTickets ends refreshTicketKeys; nil when it does not run.
	stopTickets chan struct{}
}

// refreshTicketKeys sets the session ticket keys every interval (they rotate).
func (s *Server) refreshTicketKeys(cfg *tls.Config, keys func(time.Time) [][32]byte, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopTickets:
			return
		case now := <-t.C:
			cfg.SetSessionTicketKeys(keys(now))
		}
	}
}

// Start loads the config, opens every listener and starts serving.
func Start(opts RunOptions) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	cfg, raw, err := Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger, cfg: cfg, raw: raw, hup: make(chan os.Signal, 1)}
	// Registered before any listener is up, so an early SIGHUP never kills us.
	signal.Notify(s.hup, syscall.SIGHUP)
	fail := func(err error) (*Server, error) {
		s.closeListeners()
		signal.Stop(s.hup)
		return nil, err
	}
	o := cfg.Options
	o.Logger = opts.Logger
	o.Dialer = opts.Dialer
	s.proxy = lb.New(o)
	if err := s.proxy.Update(cfg.Routes); err != nil {
		return fail(err)
	}
	if in := opts.Sockets; in != nil {
		s.listeners, s.tlsListeners, s.adminLn = in.Listeners, in.TLSListeners, in.Admin
		if len(s.tlsListeners) > 0 && len(cfg.TLSListen) == 0 {
			return fail(errors.New("HTTPS sockets were inherited but the config has no tls: section (it changed since the start: restart potluck-front)"))
		}
	} else {
		if s.listeners, err = listenAll(cfg.Listen, "listen"); err != nil {
			return fail(err)
		}
		if s.tlsListeners, err = listenAll(cfg.TLSListen, "tls listen"); err != nil {
			return fail(err)
		}
		if cfg.Admin != "" {
			if s.adminLn, err = net.Listen("tcp", cfg.Admin); err != nil {
				return fail(fmt.Errorf("admin listen %s: %w", cfg.Admin, err))
			}
		}
	}
	if ln := s.adminLn; ln != nil {
		mux := http.NewServeMux()
		mux.Handle("/", s.proxy.AdminHandler())
		if opts.Pprof {
			debugpprof.Register(mux)
		}
		s.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			if err := s.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("admin listener stopped", "err", err)
			}
		}()
	}
	if len(cfg.TLSListen) > 0 {
		tlsCfg := &tls.Config{Certificates: cfg.TLSCertificates, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}
		if in := opts.Sockets; in != nil && in.TicketKeys != nil {
			tlsCfg.SetSessionTicketKeys(in.TicketKeys(time.Now()))
			s.stopTickets = make(chan struct{})
			go s.refreshTicketKeys(tlsCfg, in.TicketKeys, ticketKeyRefresh)
		}
		s.tls = front.NewTLSServer(tlsCfg, s.log, cfg.H2Server)
		for _, ln := range s.tlsListeners {
			s.serving.Add(1)
			go func() {
				defer s.serving.Done()
				if err := s.tls.Serve(ln, s.proxy); err != nil {
					s.log.Error("TLS listener stopped", "addr", ln.Addr().String(), "err", err)
				}
			}()
			s.log.Info("listening (TLS: HTTP/1.1, h2)", "addr", ln.Addr().String())
		}
	}
	for _, ln := range s.listeners {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			if err := s.proxy.Serve(ln); err != nil {
				s.log.Error("listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
		s.log.Info("listening", "addr", ln.Addr().String())
	}
	if s.adminLn != nil {
		s.log.Info("admin listening", "addr", s.adminLn.Addr().String())
	}
	return s, nil
}

// listenAll opens a TCP listener on each address; on an error it closes
// the ones it opened.
func listenAll(addrs []string, what string) ([]net.Listener, error) {
	var out []net.Listener
	for _, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range out {
				_ = l.Close()
			}
			return nil, fmt.Errorf("%s %s: %w", what, addr, err)
		}
		out = append(out, ln)
	}
	return out, nil
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		_ = ln.Close()
	}
	for _, ln := range s.tlsListeners {
		_ = ln.Close()
	}
	if s.adminLn != nil {
		_ = s.adminLn.Close()
	}
}

// TLSAddrs returns the HTTPS listeners' addresses.
func (s *Server) TLSAddrs() []net.Addr {
	out := make([]net.Addr, len(s.tlsListeners))
	for i, ln := range s.tlsListeners {
		out[i] = ln.Addr()
	}
	return out
}

// Addrs returns the proxy listeners' addresses.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, len(s.listeners))
	for i, ln := range s.listeners {
		out[i] = ln.Addr()
	}
	return out
}

// AdminAddr returns the admin listener's address, or nil.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// Proxy returns the running proxy.
func (s *Server) Proxy() *lb.Proxy { return s.proxy }

// Reload re-reads the file and swaps the routing table. An invalid file is
// refused and the current table keeps serving. Settings other than routes
// and health (listeners, timeouts, limits) need a restart; a change to them
// is logged.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, raw, err := Load(s.opts.ConfigPath)
	if err != nil {
		s.log.Error("config reload refused; the previous configuration keeps serving", "err", err)
		return err
	}
	if bytes.Equal(raw, s.raw) {
		return nil
	}
	if err := s.proxy.Update(cfg.Routes); err != nil {
		s.log.Error("config reload refused; the previous configuration keeps serving", "err", err)
		return err
	}
	if !reflect.DeepEqual(cfg.Listen, s.cfg.Listen) || !reflect.DeepEqual(cfg.TLSListen, s.cfg.TLSListen) || cfg.Admin != s.cfg.Admin ||
		cfg.Workers != s.cfg.Workers || !reflect.DeepEqual(cfg.Options, s.cfg.Options) {
		s.log.Warn("config reloaded: routes applied; listen, admin, workers, timeouts and limits changes need a restart")
	}
	s.cfg, s.raw = cfg, raw
	s.log.Info("config reloaded", "path", s.opts.ConfigPath, "routes", len(cfg.Routes))
	return nil
}

// changedFile returns the file's bytes and whether they differ from the
// loaded ones.
func (s *Server) changedFile() ([]byte, bool) {
	data, err := os.ReadFile(s.opts.ConfigPath)
	if err != nil {
		return nil, false // a missing file mid-rewrite is not a change yet
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return data, !bytes.Equal(data, s.raw)
}

// Run serves until ctx ends, reloading on SIGHUP and on file changes, then
// drains and stops.
func (s *Server) Run(ctx context.Context) error {
	defer signal.Stop(s.hup)
	var tick <-chan time.Time
	if s.opts.WatchInterval > 0 {
		t := time.NewTicker(s.opts.WatchInterval)
		defer t.Stop()
		tick = t.C
	}
	var lastBad []byte // do not log the same refused file every tick
	for {
		select {
		case <-ctx.Done():
			return s.Shutdown()
		case <-s.hup:
			s.log.Info("SIGHUP: reloading config")
			_ = s.Reload()
		case <-tick:
			data, changed := s.changedFile()
			if !changed || bytes.Equal(data, lastBad) {
				continue
			}
			s.log.Info("config file changed: reloading", "path", s.opts.ConfigPath)
			if err := s.Reload(); err != nil {
				lastBad = data
			}
		}
	}
}

// Shutdown stops accepting, drains in-flight requests and closes listeners.
func (s *Server) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	s.log.Info("shutting down: draining in-flight requests", "timeout", s.opts.ShutdownTimeout)
	if s.tls != nil {
		s.tls.CloseListeners()
	}
	err := s.proxy.Shutdown(ctx)
	if s.tls != nil {
		s.tls.Close(ctx)
	}
	if s.admin != nil {
		err = errors.Join(err, s.admin.Shutdown(ctx))
	}
	if s.stopTickets != nil {
		close(s.stopTickets)
	}
	s.serving.Wait()
	return err
}
