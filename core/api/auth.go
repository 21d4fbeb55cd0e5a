package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"potluck/core/fsm"
)

// authKind is who may call a route.
type authKind int

const (
	authOperator authKind = iota
	authJoin              // a join token or the operator token
)

type ctxKey int

// joinTokenKey holds the id of the join token a request was authorised by.
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

func isOperator(st *fsm.State, tok string) bool {
	return tok != "" && st.OperatorTokenHash != "" && equalHash(HashToken(tok), st.OperatorTokenHash)
}

// joinTokenID checks a join token and returns its id.
func joinTokenID(st *fsm.State, tok string, now time.Time) (string, bool) {
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

// auth admits a request whose bearer token this node knows for kind. A
// token it does not know goes to the leader, which decides (unknownToken).
func (s *Server) auth(kind authKind, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" {
			writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
			return
		}
		st := s.node.State()
		if s.isOperator(st, tok) {
			next(w, r)
			return
		}
		if kind == authJoin {
			if id, ok := joinTokenID(st, tok, s.cfg.Now()); ok {
				next(w, r.WithContext(context.WithValue(r.Context(), joinTokenKey, id)))
				return
			}
			s.unknownToken(w, r, "join token is unknown, revoked or expired")
			return
		}
		s.unknownToken(w, r, "token is not valid for this call (operator token required)")
	}
}
