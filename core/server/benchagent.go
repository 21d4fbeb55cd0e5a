package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"potluck/core/agentapi"
	"potluck/internal/debugpprof"
)

// HeaderBenchKey names the caller of the bench agent listener: the
// WireGuard public key (base64) of the host it speaks for.
const HeaderBenchKey = "X-Potluck-Bench-Key"

// The bench agent listener (Config.BenchAgentAddr, potluck-core
// --bench-agent-listen) serves the same agent API handler as the tunnel, on
// a loopback TCP address, and takes the caller's identity from
// HeaderBenchKey instead of the tunnel peer. It exists so `potluck-bench
// fleet` can drive thousands of simulated hosts through the real handlers
// (desired state by blocking query, heartbeats, forwarding to the leader)
// without one WireGuard node per host; anyone who can reach it can speak for
// any host, so it refuses any address but loopback. It also serves
// /debug/pprof/ for profiling the node under that load.

// startBenchAgent serves the bench agent listener when configured.
func (s *Server) startBenchAgent(ctx context.Context) error {
	if s.cfg.BenchAgentAddr == "" {
		return nil
	}
	addr, err := benchAgentAddr(s.cfg.BenchAgentAddr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bench agent listener: %w", err)
	}
	agent := agentapi.New(agentapi.Config{
		State: s.Node.FSM, Blobs: s.Blobs, Logger: s.log,
		Identify:  benchIdentify,
		Heartbeat: s.deliverHeartbeat,
		Context:   ctx,
	})
	mux := http.NewServeMux()
	debugpprof.Register(mux)
	mux.Handle("/", agent)
	s.benchAgent = &http.Server{
		Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	s.log.Warn("bench agent listener on: any local process may speak for any host", "addr", ln.Addr().String())
	s.goRun(func() {
		if err := s.benchAgent.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("bench agent listener", "err", err)
		}
	})
	return nil
}

func benchIdentify(r *http.Request) (string, bool) {
	k := r.Header.Get(HeaderBenchKey)
	return k, k != ""
}

// benchAgentAddr checks that the bench agent listener is on loopback: it
// lets any caller speak for any host.
func benchAgentAddr(addr string) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return "", fmt.Errorf("bench agent listener %q: must be a loopback address:port such as 127.0.0.1:8403", addr)
	}
	return ap.String(), nil
}
