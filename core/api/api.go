// Package api serves the core's public HTTP API: JSON under /v1, bearer
// tokens, errors as {"error": "..."}. Any core node answers reads from its own
// state (with blocking queries); writes are forwarded to the raft leader,
// which validates them, schedules, and commits them with the request id from
// the X-Request-Id header so a retried write is applied once.
//
// The handlers reach their core node only through the Node interface, so
// they are tested with a node in memory; core/server passes the raft node.
package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"potluck/agentproto"
	"potluck/core/blobs"
	"potluck/core/metrics"
	"potluck/core/scheduler"
	"potluck/internal/jsonhttp"
	"potluck/internal/ratelimit"
)

// Header names.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderIndex     = "X-Potluck-Index"
	HeaderForwarded = "X-Potluck-Forwarded-By" // loop guard: set by the follower that forwarded
)

// Defaults of Config's limits.
const (
	DefaultMaxBodyBytes   = 1 << 20         // JSON bodies
	DefaultMaxUploadBytes = 2 << 30         // image tarballs
	DefaultMaxList        = 1000            // most items per list page (?limit)
	DefaultLeaderHold     = 5 * time.Second // how long a request waits for a leader
)

// HeartbeatFunc handles a host's heartbeat on the leader.
type HeartbeatFunc func(ctx context.Context, hostID string, reports []agentproto.InstanceReport) error

// Config wires the API to the rest of the core node.
type Config struct {
	Node    Node
	Blobs   *blobs.Store
	Metrics *metrics.Registry
	Logger  *slog.Logger

	MaxBodyBytes   int64 // JSON bodies; 0 = DefaultMaxBodyBytes
	MaxUploadBytes int64 // image tarballs; 0 = DefaultMaxUploadBytes
	MaxList        int   // most items per list page; 0 = DefaultMaxList

	TunnelPrefix netip.Prefix // 100.64.0.0/10
	// ReadyOnRegister makes hosts Ready at registration (no mesh to probe
	// them over, development and API tests). Otherwise they start Pending.
	ReadyOnRegister bool
	AgentPort       uint16 // agent API port on core tunnel addresses

	// OperatorTokenHash is HashToken of the operator token this node was
	// started with: accepted while the state holds no operator token yet
	// (see isOperator), so a node that has not caught up still answers its
	// operator's status and ?stale reads.
	OperatorTokenHash string

	// OnRemoved runs once when this node learns it was removed from the
	// raft group (the leader tells it, or it removed itself); the core node
	// stops serving. Nil: the API alone answers 410 from then on.
	OnRemoved func()

	// SealCert seals a certificate store value (core/certseal); nil: this
	// node cannot take uploaded certificates.
	SealCert func(key string, value []byte) ([]byte, error)

	Heartbeat HeartbeatFunc // the leader's reconciler
	// LastHeartbeat says when a host last heartbeated to this node while it
	// leads (the leader's reconciler); nil: hosts are shown without it.
	LastHeartbeat func(hostID string) (time.Time, bool)
	Autoscaler    Autoscaler // metrics and autoscaling; nil: neither (501)
	// Usage is what installations used lately (the leader's metrics), by
	// which the pack policy forecasts each Back's load; nil: reservations.
	Usage      scheduler.Usage
	Logs       LogSource     // reaches Backs' logs over the mesh; nil: no logs
	LeaderHold time.Duration // how long a write waits for a leader; 0 = DefaultLeaderHold
	// DeleteWait is how long DELETE /v1/installations/{name} waits for the
	// drained installation to be gone before it answers 202 instead of
	// 204; 0 answers at once (204) once the deletion has started.
	DeleteWait time.Duration
	Client     *http.Client // for forwarding; nil = a default with timeouts
	// Now is the clock join tokens expire by; nil = time.Now.
	Now func() time.Time

	// NodeToken is the credential core nodes use between themselves (see
	// core/server); it passes everything the operator token does and does
	// not change when the operator token is rotated. Empty: none.
	NodeToken string
	// BodyIdleTimeout bounds the wait for each read of a request body;
	// 0 = DefaultBodyIdleTimeout.
	BodyIdleTimeout time.Duration
	// FailedAuth limits failed tokens per client address (zero: the
	// ratelimit defaults; its Now defaults to Now above).
	FailedAuth ratelimit.Config
}

// Server is the public API handler.
type Server struct {
	cfg     Config
	node    Node
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler // mux behind GuardBody
	proxy   *http.Client
	limiter *ratelimit.Limiter
	// nodeTokenHash is HashToken(cfg.NodeToken), "" without a node token.
	nodeTokenHash string
	// removed is set once this node was removed from the raft group: it
	// then answers 410 to everything (see members.go).
	removed atomic.Bool
}

// New builds the API handler.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if cfg.MaxList == 0 {
		cfg.MaxList = DefaultMaxList
	}
	if cfg.LeaderHold == 0 {
		cfg.LeaderHold = DefaultLeaderHold
	}
	if !cfg.TunnelPrefix.IsValid() {
		cfg.TunnelPrefix = netip.MustParsePrefix("100.64.0.0/10")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		// Forwarded blocking queries may wait up to jsonhttp.MaxWait.
		cfg.Client = &http.Client{Transport: &http.Transport{ResponseHeaderTimeout: jsonhttp.MaxWait + time.Minute, IdleConnTimeout: 30 * time.Second}}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(nil)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FailedAuth.Now == nil {
		cfg.FailedAuth.Now = cfg.Now
	}
	s := &Server{cfg: cfg, node: cfg.Node, log: cfg.Logger, mux: http.NewServeMux(), proxy: cfg.Client, limiter: ratelimit.New(cfg.FailedAuth)}
	if cfg.NodeToken != "" {
		s.nodeTokenHash = HashToken(cfg.NodeToken)
	}
	s.handler = GuardBody(s.mux, cfg.BodyIdleTimeout)
	s.routes()
	return s
}

func (s *Server) routes() {
	local := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(authOperator, h) }
	op := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(authOperator, s.consistentRead(h)) }
	w := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(authOperator, s.leaderOnly(h)) }

	s.mux.HandleFunc("GET /v1/status", local(s.getStatus))

	s.mux.HandleFunc("GET /v1/tokens", op(s.listTokens))
	s.mux.HandleFunc("POST /v1/tokens", w(s.createToken))
	s.mux.HandleFunc("DELETE /v1/tokens/{id}", w(s.revokeToken))
	s.mux.HandleFunc("POST /v1/tokens/operator/rotate", w(s.rotateOperatorToken))

	s.mux.HandleFunc("POST /v1/hosts", s.auth(authJoin, s.leaderOnly(s.registerHost)))
	s.mux.HandleFunc("GET /v1/hosts", op(s.listHosts))
	s.mux.HandleFunc("GET /v1/hosts/{id}", op(s.getHost))
	s.mux.HandleFunc("PATCH /v1/hosts/{id}", w(s.patchHost))
	s.mux.HandleFunc("POST /v1/hosts/{id}/decommission", w(s.decommissionHost))

	s.mux.HandleFunc("GET /v1/apps", op(s.listApps))
	s.mux.HandleFunc("POST /v1/apps", w(s.createImageApp))
	s.mux.HandleFunc(patternUpload, w(s.uploadApp))
	s.mux.HandleFunc("GET /v1/apps/{name}", op(s.getApp))
	s.mux.HandleFunc("DELETE /v1/apps/{name}", w(s.deleteApp))
	s.mux.HandleFunc("GET /v1/blobs/{digest}", local(s.getBlob))

	s.mux.HandleFunc("GET /v1/installations", op(s.listInstallations))
	s.mux.HandleFunc("POST /v1/installations", w(s.createInstallation))
	s.mux.HandleFunc("GET /v1/installations/{name}", op(s.getInstallation))
	s.mux.HandleFunc("POST /v1/installations/{name}/scale", w(s.scaleInstallation))
	s.mux.HandleFunc("DELETE /v1/installations/{name}", w(s.deleteInstallation))
	s.mux.HandleFunc("GET /v1/installations/{name}/releases", op(s.listReleases))
	s.mux.HandleFunc("POST /v1/installations/{name}/releases", w(s.deploy))
	s.mux.HandleFunc("POST /v1/installations/{name}/rollback", w(s.rollback))
	s.mux.HandleFunc("GET /v1/installations/{name}/logs", local(s.getLogs))
	s.mux.HandleFunc("PUT /v1/installations/{name}/tls", w(s.setInstallationTLS))

	s.mux.HandleFunc("GET /v1/containers", op(s.listContainers))
	s.autoscaleRoutes(op, w)

	// Web UI sessions: opened with any token but a join token; looked up
	// and ended with the session id itself (uisessions.go).
	s.mux.HandleFunc("POST /v1/ui/sessions", s.auth(authUser, s.leaderOnly(s.createUISession)))
	s.mux.HandleFunc("GET /v1/ui/sessions/current", s.consistentRead(s.getUISession))
	s.mux.HandleFunc("DELETE /v1/ui/sessions/current", s.leaderOnly(s.deleteUISession))

	s.mux.HandleFunc("GET /v1/cluster/members", local(s.listMembers))
	s.mux.HandleFunc("GET /v1/cluster/snapshot", w(s.saveSnapshot))
	s.mux.HandleFunc("POST /v1/cluster/snapshot", w(s.restoreSnapshot))
	s.mux.HandleFunc("POST /v1/cluster/voters", w(s.addVoter))
	s.mux.HandleFunc("DELETE /v1/cluster/voters/{id}", w(s.removeVoter))
	s.mux.HandleFunc("GET /v1/cluster/placement", op(s.getPlacementPolicy))
	s.mux.HandleFunc("PUT /v1/cluster/placement", w(s.setPlacementPolicy))

	// Core-to-core calls (node token, or the operator's): a node registering itself and
	// heartbeats that a follower received from an agent.
	s.mux.HandleFunc("POST /v1/internal/core-nodes", w(s.upsertCoreNode))
	s.mux.HandleFunc("POST /v1/internal/heartbeat", w(s.internalHeartbeat))
	s.mux.HandleFunc("POST /v1/internal/certstore", w(s.internalCertStore))
	s.mux.HandleFunc("POST /v1/internal/removed", local(s.internalRemoved))

	// Metrics need the operator token here, on the public listener; the
	// core's --metrics-listen serves them without one, on loopback.
	s.mux.HandleFunc("GET /metrics", local(s.cfg.Metrics.ServeHTTP))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
}

// ServeHTTP counts and times every request. A node removed from the
// cluster answers every request 410.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	if s.removed.Load() {
		writeError(rec, http.StatusGone, s.removedMessage())
	} else {
		s.handler.ServeHTTP(rec, r)
	}
	s.cfg.Metrics.Observe(r.Pattern, r.Method, rec.code, time.Since(start))
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
