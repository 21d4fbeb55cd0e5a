// Package api serves the core's public HTTP API: JSON under /v1, bearer
// tokens, errors as {"error": "..."}. Any core node answers reads from its own
// state (with blocking queries); writes are forwarded to the raft leader,
// which validates them, schedules, and commits them with the request id from
// the X-Request-Id header so a retried write is applied once.
package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"potluck/agentproto"
	"potluck/core/blobs"
	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/metrics"
	"potluck/internal/jsonhttp"
)

// Header names.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderIndex     = "X-Potluck-Index"
	HeaderForwarded = "X-Potluck-Forwarded-By" // loop guard: set by the follower that forwarded
)

// HeartbeatFunc handles a host's heartbeat on the leader.
type HeartbeatFunc func(ctx context.Context, hostID string, reports []agentproto.InstanceReport) error

// Config wires the API to the rest of the core node.
type Config struct {
	Node    *cluster.Node
	Blobs   *blobs.Store
	Metrics *metrics.Registry
	Logger  *slog.Logger

	MaxBodyBytes   int64 // JSON bodies; 0 = 1 MiB
	MaxUploadBytes int64 // image tarballs; 0 = 2 GiB
	MaxList        int   // items per list response; 0 = 1000

	TunnelPrefix netip.Prefix // 100.64.0.0/10
	// ReadyOnRegister makes hosts Ready at registration (no mesh to probe
	// them over, development and API tests). Otherwise they start Pending.
	ReadyOnRegister bool
	AgentPort       uint16 // agent API port on core tunnel addresses

	Heartbeat  HeartbeatFunc // the leader's reconciler
	LeaderHold time.Duration // how long a write waits for a leader; 0 = 5s
	Client     *http.Client  // for forwarding; nil = a default with timeouts
}

// Server is the public API handler.
type Server struct {
	cfg   Config
	node  *cluster.Node
	log   *slog.Logger
	mux   *http.ServeMux
	proxy *http.Client
}

// New builds the API handler.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = 2 << 30
	}
	if cfg.MaxList == 0 {
		cfg.MaxList = 1000
	}
	if cfg.LeaderHold == 0 {
		cfg.LeaderHold = 5 * time.Second
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
	s := &Server{cfg: cfg, node: cfg.Node, log: cfg.Logger, mux: http.NewServeMux(), proxy: cfg.Client}
	s.routes()
	return s
}

type authKind int

const (
	authOperator authKind = iota
	authJoin              // a join token or the operator token
)

func (s *Server) routes() {
	local := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(authOperator, h) }
	op := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(authOperator, s.consistentRead(h)) }
	w := func(h http.HandlerFunc) http.HandlerFunc { return s.auth(authOperator, s.leaderOnly(h)) }

	s.mux.HandleFunc("GET /v1/status", local(s.getStatus))

	s.mux.HandleFunc("GET /v1/tokens", op(s.listTokens))
	s.mux.HandleFunc("POST /v1/tokens", w(s.createToken))
	s.mux.HandleFunc("DELETE /v1/tokens/{id}", w(s.revokeToken))

	s.mux.HandleFunc("POST /v1/hosts", s.auth(authJoin, s.leaderOnly(s.registerHost)))
	s.mux.HandleFunc("GET /v1/hosts", op(s.listHosts))
	s.mux.HandleFunc("GET /v1/hosts/{id}", op(s.getHost))
	s.mux.HandleFunc("POST /v1/hosts/{id}/decommission", w(s.decommissionHost))

	s.mux.HandleFunc("GET /v1/apps", op(s.listApps))
	s.mux.HandleFunc("POST /v1/apps", w(s.createImageApp))
	s.mux.HandleFunc("POST /v1/apps/{name}/tarball", w(s.uploadApp))
	s.mux.HandleFunc("GET /v1/apps/{name}", op(s.getApp))
	s.mux.HandleFunc("DELETE /v1/apps/{name}", w(s.deleteApp))
	s.mux.HandleFunc("GET /v1/blobs/{digest}", local(s.getBlob))

	s.mux.HandleFunc("GET /v1/installations", op(s.listInstallations))
	s.mux.HandleFunc("POST /v1/installations", w(s.createInstallation))
	s.mux.HandleFunc("GET /v1/installations/{name}", op(s.getInstallation))
	s.mux.HandleFunc("POST /v1/installations/{name}/scale", w(s.scaleInstallation))
	s.mux.HandleFunc("DELETE /v1/installations/{name}", w(s.deleteInstallation))

	s.mux.HandleFunc("GET /v1/containers", op(s.listContainers))

	s.mux.HandleFunc("POST /v1/cluster/voters", w(s.addVoter))
	s.mux.HandleFunc("DELETE /v1/cluster/voters/{id}", w(s.removeVoter))

	// Core-to-core calls (operator token): a node registering itself and
	// heartbeats that a follower received from an agent.
	s.mux.HandleFunc("POST /v1/internal/core-nodes", w(s.upsertCoreNode))
	s.mux.HandleFunc("POST /v1/internal/heartbeat", w(s.internalHeartbeat))

	s.mux.Handle("GET /metrics", s.cfg.Metrics)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s (see docs/api.md)", r.Method, r.URL.Path))
	})
}

// ServeHTTP counts and times every request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
	s.mux.ServeHTTP(rec, r)
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

// ---- auth ----

type ctxKey int

const joinTokenKey ctxKey = 1

// HashToken is the stored form of a token: hex sha256. Tokens are random
// 256-bit secrets, so an unsalted fast hash is enough.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func equalHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(tok)
}

// NewJoinToken returns a fresh join token "<id>.<secret>" and its id.
func NewJoinToken() (token, id string) {
	id = randomHex(4)
	var b [32]byte
	_, _ = rand.Read(b[:])
	return id + "." + base64.RawURLEncoding.EncodeToString(b[:]), id
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) isOperator(st *fsm.State, tok string) bool {
	return tok != "" && st.OperatorTokenHash != "" && equalHash(HashToken(tok), st.OperatorTokenHash)
}

// joinTokenID checks a join token and returns its id.
func (s *Server) joinTokenID(st *fsm.State, tok string, now time.Time) (string, bool) {
	id, _, ok := strings.Cut(tok, ".")
	if !ok {
		return "", false
	}
	t, found := st.Tokens[id]
	hash := HashToken(tok)
	if !found {
		equalHash(hash, hash) // same work whether or not the id exists
		return "", false
	}
	if !equalHash(hash, t.Hash) || t.Revoked || (t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)) {
		return "", false
	}
	return id, true
}

func (s *Server) auth(kind authKind, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" {
			writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
			return
		}
		st := s.node.FSM.State()
		if s.isOperator(st, tok) {
			next(w, r)
			return
		}
		if kind == authJoin {
			if id, ok := s.joinTokenID(st, tok, time.Now()); ok {
				next(w, r.WithContext(context.WithValue(r.Context(), joinTokenKey, id)))
				return
			}
			if s.forwardUnknown(w, r) {
				return
			}
			writeError(w, http.StatusUnauthorized, "join token is unknown, revoked or expired")
			return
		}
		if s.forwardUnknown(w, r) {
			return
		}
		writeError(w, http.StatusUnauthorized, "token is not valid for this call (operator token required)")
	}
}

// ---- forwarding ----

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// leaderOnly runs a write on the leader. On a follower the request (body
// streamed) is proxied to the leader's API, marked with HeaderForwarded; a
// forwarded request that lands on a non-leader is refused instead of being
// forwarded again. Every write gets a request id (the client's, or a new one).
func (s *Server) leaderOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if id == "" {
			id = randomHex(16)
			r.Header.Set(HeaderRequestID, id)
		} else if !requestIDPattern.MatchString(id) {
			writeError(w, http.StatusBadRequest, "X-Request-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
			return
		}
		w.Header().Set(HeaderRequestID, id)
		if s.node.IsLeader() {
			next(w, r)
			return
		}
		if by := r.Header.Get(HeaderForwarded); by != "" {
			writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("request forwarded by %s reached %s, which is not the leader (leadership is changing); retry with the same X-Request-Id", by, s.node.ID()))
			return
		}
		if !s.forward(w, r) {
			next(w, r) // we became the leader meanwhile
		}
	}
}

// forwardUnknown sends a request whose token this node does not know to the
// leader: a follower that lags (or just restarted and has not replayed its
// log yet) may not have a token that the leader already accepts. The leader
// gives the definite answer. It returns false when this node must answer.
func (s *Server) forwardUnknown(w http.ResponseWriter, r *http.Request) bool {
	if s.node.IsLeader() || r.Header.Get(HeaderForwarded) != "" {
		return false
	}
	return s.forward(w, r)
}

// forward proxies r (body streamed) to the leader. It returns false, having
// written nothing, when this node is the leader itself.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) bool {
	target, err := s.leaderURL(r.Context())
	if err != nil {
		if s.node.IsLeader() {
			return false
		}
		writeError(w, http.StatusServiceUnavailable, err.Error()+"; retry with the same X-Request-Id")
		return true
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.Out.Header.Set(HeaderForwarded, s.node.ID())
		},
		Transport: s.proxy.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, fmt.Sprintf("forwarding to the leader failed (%v); retry with the same X-Request-Id", err))
		},
	}
	proxy.ServeHTTP(w, r)
	return true
}

// consistentRead answers a read from the leader's state, so a read after an
// acknowledged write sees it: a follower forwards the request, the leader
// first makes sure it applied everything committed before its term. With
// ?stale the node answers from its own copy (may lag; works without a
// leader). A forwarded read that reaches a non-leader is answered locally
// rather than bounced again.
func (s *Server) consistentRead(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("stale") || r.Header.Get(HeaderForwarded) != "" {
			next(w, r)
			return
		}
		if s.node.IsLeader() {
			if err := s.node.CatchUp(); err != nil && !errors.Is(err, cluster.ErrNotLeader) {
				writeError(w, http.StatusServiceUnavailable, err.Error()+"; retry, or add ?stale")
				return
			}
			next(w, r)
			return
		}
		if !s.forward(w, r) {
			next(w, r)
		}
	}
}

// leaderURL waits (bounded by LeaderHold) for a leader whose API URL is known.
func (s *Server) leaderURL(ctx context.Context) (*url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderHold)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.node.IsLeader() {
			return nil, errors.New("this node became the leader")
		}
		if id := s.node.Leader(); id != "" {
			if c, ok := s.node.FSM.State().CoreNodes[id]; ok && c.APIURL != "" {
				u, err := url.Parse(c.APIURL)
				if err == nil {
					return u, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("no raft leader with a known API address")
		case <-tick.C:
		}
	}
}

// ---- helpers ----

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body strictly: size-limited, unknown fields rejected,
// exactly one value.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBodyBytes))
			return false
		}
		if errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "empty body: send a JSON object")
			return false
		}
		writeError(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "malformed JSON body: more than one JSON value")
		return false
	}
	return true
}

// writeResult maps a commit outcome to an HTTP error; it returns false when
// it wrote one.
func (s *Server) writeResult(w http.ResponseWriter, res fsm.Result, err error) bool {
	if err != nil {
		if errors.Is(err, cluster.ErrNotLeader) {
			writeError(w, http.StatusServiceUnavailable, "leadership changed during the request; retry with the same X-Request-Id")
			return false
		}
		s.log.Warn("apply failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return false
	}
	if res.Err != nil {
		writeError(w, statusOf(res.Err), res.Err.Error())
		return false
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(res.Index, 10))
	return true
}

func statusOf(err error) int {
	switch fsm.CodeOf(err) {
	case fsm.CodeInvalid:
		return http.StatusBadRequest
	case fsm.CodeNotFound:
		return http.StatusNotFound
	case fsm.CodeConflict:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// blockingState implements ?index=N&wait=D: wait until the state index
// exceeds N (at most D, default 5m, max 10m: jsonhttp.ParseBlockingQuery), then
// return the state.
func (s *Server) blockingState(w http.ResponseWriter, r *http.Request) (*fsm.State, bool) {
	st := s.node.FSM.State()
	n, wait, blocking, err := jsonhttp.ParseBlockingQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	if blocking {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		st = s.node.FSM.Wait(ctx, n)
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(st.Index, 10))
	return st, true
}

// newID returns a random id with a prefix, e.g. "h-1f2e3d4c5b6a".
func newID(prefix string) string { return prefix + "-" + randomHex(6) }

func requestID(r *http.Request) string { return r.Header.Get(HeaderRequestID) }

func limitList[T any](items []T, max int) []T {
	if len(items) > max {
		return items[:max]
	}
	return items
}
