package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"potluck/core/fsm"
	"potluck/internal/ratelimit"
)

// authKind is who may call a route.
type authKind int

const (
	// authOperator: the operator and core nodes; app-owner and read-only
	// tokens where the scope policy (allows) admits them.
	authOperator authKind = iota
	authJoin              // host registration: a join token, the operator or a core node
	// authUser: any token but a join token, whatever its scope (opening a
	// web UI session, which then acts with the token's own limits).
	authUser
)

// callerKind is what a request's bearer token turned out to be.
type callerKind int

const (
	callerOperator callerKind = iota + 1
	callerNode                // another core node (NodeToken)
	callerJoin
	callerAppOwner
	callerReadOnly
)

// caller is who sent a request, kept in its context.
type caller struct {
	kind    callerKind
	tokenID string // join and scoped tokens
	// apps and installations an app-owner token names.
	apps, installations map[string]bool
}

type ctxKey int

const callerKey ctxKey = 1

// callerOf is the authenticated caller of r (nil before auth).
func callerOf(r *http.Request) *caller {
	c, _ := r.Context().Value(callerKey).(*caller)
	return c
}

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

// NewJoinToken returns a fresh token "<id>.<secret>" and its id (join and
// scoped tokens have this shape).
func NewJoinToken() (token, id string) {
	id = randomHex(4)
	return id + "." + newSecret(), id
}

// newSecret is 256 random bits, base64url.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// isOperator: the current operator token, or the one it replaced while the
// rotation's grace lasts.
func isOperator(st *fsm.State, tok string, now time.Time) bool {
	return tok != "" && isOperatorHash(st, HashToken(tok), now)
}

// isOperatorHash is isOperator for a token known by its hash (a UI
// session's).
func isOperatorHash(st *fsm.State, hash string, now time.Time) bool {
	if st.OperatorTokenHash == "" {
		return false
	}
	current := equalHash(hash, st.OperatorTokenHash)
	previous := st.PreviousOperatorTokenHash != "" && equalHash(hash, st.PreviousOperatorTokenHash) &&
		st.PreviousOperatorUntil != nil && now.Before(*st.PreviousOperatorUntil)
	return current || previous
}

// lookupToken checks a join or scoped token and returns it.
func lookupToken(st *fsm.State, tok string, now time.Time) (*fsm.JoinToken, bool) {
	id, _, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, false
	}
	t, found := st.Tokens[id]
	hash := HashToken(tok)
	if !found {
		equalHash(hash, hash) // same work whether or not the id exists
		return nil, false
	}
	if !equalHash(hash, t.Hash) || !t.Usable(now) {
		return nil, false
	}
	return t, true
}

// identify returns who tok belongs to, or nil when this node knows no such
// token.
func (s *Server) identify(st *fsm.State, tok string) *caller {
	if s.isNodeToken(tok) {
		return &caller{kind: callerNode}
	}
	now := s.cfg.Now()
	if isOperator(st, tok, now) || s.isStartupOperator(st, tok) {
		return &caller{kind: callerOperator}
	}
	t, ok := lookupToken(st, tok, now)
	if !ok {
		return nil
	}
	c := &caller{tokenID: t.ID}
	switch t.ScopeOrJoin() {
	case fsm.ScopeJoin:
		c.kind = callerJoin
	case fsm.ScopeReadOnly:
		c.kind = callerReadOnly
	case fsm.ScopeAppOwner:
		c.kind = callerAppOwner
		c.apps, c.installations = set(t.Apps), set(t.Installations)
	default:
		return nil
	}
	return c
}

// isNodeToken reports whether tok is the node token core nodes use between
// themselves (never, when this node has none).
func (s *Server) isNodeToken(tok string) bool {
	return s.nodeTokenHash != "" && equalHash(HashToken(tok), s.nodeTokenHash)
}

func set(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// limited answers 429 with Retry-After when client has failed too often
// (what it failed with named in the message).
func (s *Server) limited(w http.ResponseWriter, client, what string) bool {
	ok, wait := s.limiter.Allow(client)
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(ratelimit.RetryAfterSeconds(wait)))
		writeError(w, http.StatusTooManyRequests, "too many "+what+" from this address; retry later")
	}
	return !ok
}

// auth admits a request whose bearer token this node knows and whose
// caller may make it. Failed tokens are rate limited per client address
// (429 with Retry-After). A token this node does not know goes to the
// leader (forwardUnknown) when it is cheap to: a lagging follower may not
// have a token yet that the leader already accepts.
func (s *Server) auth(kind authKind, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" {
			writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
			return
		}
		client := s.clientAddr(r)
		if s.limited(w, client, "failed tokens") {
			return
		}
		c := s.identify(s.node.State(), tok)
		if c == nil {
			refusal := "token is not valid for this call (operator token required)"
			if kind == authJoin {
				refusal = "join token is unknown, revoked or expired"
			}
			s.unknownToken(w, r, client, refusal)
			return
		}
		if c.kind == callerJoin && kind != authJoin {
			s.refuseToken(w, r, client, "token is not valid for this call (operator token required)")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), callerKey, c))
		if kind == authUser {
			next(w, r)
			return
		}
		if err := s.allows(c, r); err != nil {
			writeError(w, http.StatusForbidden, err.Error())
			return
		}
		next(w, r)
	}
}

// allows is the scope policy: the operator and core nodes may call
// everything; a join token only registers hosts (the route's authJoin);
// a read-only token may read everything but image blobs and core-internal
// routes; an app-owner token may read and change its apps and
// installations, create installations of its apps, and read status and
// containers (lists show only what it owns, see scopeState).
func (s *Server) allows(c *caller, r *http.Request) error {
	switch c.kind {
	case callerOperator, callerNode, callerJoin:
		return nil
	case callerReadOnly:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return fmt.Errorf("a read-only token may not %s %s", r.Method, r.URL.Path)
		}
		if strings.HasPrefix(r.URL.Path, "/v1/blobs/") || strings.HasPrefix(r.URL.Path, "/v1/internal/") {
			return fmt.Errorf("a read-only token may not read %s", r.URL.Path)
		}
		return nil
	case callerAppOwner:
		return s.allowsAppOwner(c, r)
	}
	return fmt.Errorf("unknown caller")
}

func (s *Server) allowsAppOwner(c *caller, r *http.Request) error {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1/"), "/")
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	denied := fmt.Errorf("this app-owner token may not %s %s (it owns apps %s and installations %s)",
		r.Method, r.URL.Path, names(c.apps), names(c.installations))
	switch {
	case len(parts) == 1 && (parts[0] == "status" || parts[0] == "containers") && read:
		return nil
	case len(parts) == 1 && parts[0] == "apps":
		if read {
			return nil
		}
		if r.Method == http.MethodPost {
			var body struct {
				Name string `json:"name"`
			}
			if s.peekJSON(r, &body) && c.apps[body.Name] {
				return nil
			}
		}
	case len(parts) >= 2 && parts[0] == "apps":
		if c.apps[parts[1]] || (read && s.usedByOwned(c, parts[1])) {
			return nil
		}
	case len(parts) == 1 && parts[0] == "installations":
		if read {
			return nil
		}
		if r.Method == http.MethodPost {
			var body struct {
				App string `json:"app"`
			}
			if s.peekJSON(r, &body) && c.apps[body.App] {
				return nil
			}
		}
	case len(parts) >= 2 && parts[0] == "installations":
		if ownsInstallation(c, s.node.State(), parts[1]) {
			return nil
		}
	}
	return denied
}

// ownsInstallation: named by the token, or an installation of an app it owns.
func ownsInstallation(c *caller, st *fsm.State, name string) bool {
	if c.installations[name] {
		return true
	}
	inst := st.Installations[name]
	return inst != nil && c.apps[inst.App]
}

// usedByOwned reports whether one of c's installations runs app.
func (s *Server) usedByOwned(c *caller, app string) bool {
	st := s.node.State()
	for name := range c.installations {
		if inst := st.Installations[name]; inst != nil && inst.App == app {
			return true
		}
	}
	return false
}

// peekJSON decodes r's JSON body (at most MaxBodyBytes) into v loosely and
// puts the body back for the handler; false when it cannot be read.
func (s *Server) peekJSON(r *http.Request, v any) bool {
	data, ok := s.bufferBody(r)
	return ok && json.Unmarshal(data, v) == nil
}

// bufferBody reads r's body into memory and puts what it read back in its
// place; false when the body is larger than MaxBodyBytes or cannot be read.
func (s *Server) bufferBody(r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBodyBytes+1))
	r.Body = io.NopCloser(bytes.NewReader(data))
	return data, err == nil && int64(len(data)) <= s.cfg.MaxBodyBytes
}

func names(m map[string]bool) string {
	if len(m) == 0 {
		return "(none)"
	}
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// scopeState is st as c may see it: an app-owner sees its apps (and those
// its installations run), its installations and their instances, and no
// tokens. Everyone else sees st.
func scopeState(c *caller, st *fsm.State) *fsm.State {
	if c == nil || c.kind != callerAppOwner {
		return st
	}
	v := *st
	v.Tokens = map[string]*fsm.JoinToken{}
	v.Installations = map[string]*fsm.Installation{}
	v.Apps = map[string]*fsm.App{}
	v.Instances = map[string]*fsm.Instance{}
	for name, inst := range st.Installations {
		if ownsInstallation(c, st, name) {
			v.Installations[name] = inst
			if a := st.Apps[inst.App]; a != nil {
				v.Apps[a.Name] = a
			}
		}
	}
	for name, a := range st.Apps {
		if c.apps[name] {
			v.Apps[name] = a
		}
	}
	for id, in := range st.Instances {
		if v.Installations[in.Installation] != nil {
			v.Instances[id] = in
		}
	}
	return &v
}

// clientAddr is the address failures are counted against: the client's IP,
// or, on a request forwarded by another core node (proven by the node
// token), the client address that node saw.
func (s *Server) clientAddr(r *http.Request) string {
	if fwd := r.Header.Get(HeaderClientAddr); fwd != "" && s.isNodeToken(r.Header.Get(HeaderNodeAuth)) {
		return fwd
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
