package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"potluck/core/fsm"
)

// Web UI sessions (see core/ui): the UI on any core node opens a session
// with the user's token, and every node finds it by the session id the
// browser holds. The id is the credential of the lookup and the logout, so
// those two routes take no bearer token; the state keeps only its hash.

// HeaderUISession carries a web UI session id to the lookup and logout.
const HeaderUISession = "X-Potluck-Session"

// Limits of a UI session.
const (
	MaxUISessionTTL = 7 * 24 * time.Hour
	// MaxUISessionID bounds the id a lookup hashes (the UI's are 43 bytes).
	MaxUISessionID = 128
)

// UISessionRequest is the body of POST /v1/ui/sessions.
type UISessionRequest struct {
	IDHash string `json:"id_hash"` // hex sha256 of the session id
	Sealed []byte `json:"sealed"`  // the caller's token, sealed by the UI (base64 in JSON)
	TTL    string `json:"ttl"`     // e.g. "12h"
}

// UISessionView answers the lookup: what only the id's holder can open.
type UISessionView struct {
	Sealed    []byte    `json:"sealed"`
	TokenID   string    `json:"token_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// HashUISessionID is the stored form of a session id.
func HashUISessionID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (s *Server) createUISession(w http.ResponseWriter, r *http.Request) {
	var req UISessionRequest
	if !s.decode(w, r, &req) {
		return
	}
	var p problems
	if !fsm.ValidUISessionHash(req.IDHash) {
		p.add("id_hash must be the lower-case hex sha256 of the session id")
	}
	if len(req.Sealed) == 0 || len(req.Sealed) > fsm.MaxUISessionSealed {
		p.add("sealed must be 1-%d bytes (base64)", fsm.MaxUISessionSealed)
	}
	ttl, err := time.ParseDuration(req.TTL)
	if err != nil || ttl <= 0 || ttl > MaxUISessionTTL {
		p.add("ttl must be a duration up to %s, such as 12h", MaxUISessionTTL)
	}
	if err := p.err(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tokenID := fsm.OperatorTokenID
	if c := callerOf(r); c != nil && c.tokenID != "" {
		tokenID = c.tokenID
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdCreateUISession, UISession: &fsm.UISession{
			Hash: req.IDHash, Sealed: req.Sealed, TokenID: tokenID, TokenHash: HashToken(bearer(r)), ExpiresAt: now.Add(ttl)}}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	u := s.node.State().UISessions[res.Ref]
	if u == nil {
		writeError(w, http.StatusNotFound, "the session ended meanwhile")
		return
	}
	s.log.Info("ui session opened", "token", tokenID, "expires", u.ExpiresAt)
	writeJSON(w, http.StatusCreated, UISessionView{TokenID: u.TokenID, CreatedAt: u.CreatedAt, ExpiresAt: u.ExpiresAt})
}

// uiSessionID reads the session id of a lookup or logout.
func uiSessionID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.Header.Get(HeaderUISession)
	if id == "" || len(id) > MaxUISessionID {
		writeError(w, http.StatusBadRequest, "send the session id in "+HeaderUISession)
		return "", false
	}
	return id, true
}

// getUISession answers the session of the id in the header, from the
// leader's state after a barrier (consistentRead): a session opened or
// ended on any node a moment ago is seen as such. A session of a token
// revoked or expired since is over too. The map lookup by hash needs no
// constant-time compare: the hash of a 256-bit random id reveals nothing
// usable by timing.
func (s *Server) getUISession(w http.ResponseWriter, r *http.Request) {
	id, ok := uiSessionID(w, r)
	if !ok {
		return
	}
	client := s.clientAddr(r)
	if s.limited(w, client, "unknown sessions and tokens") {
		return
	}
	st := s.node.State()
	now := s.cfg.Now()
	u := st.UISession(HashUISessionID(id), now)
	if u != nil && !sessionTokenValid(st, u, now) {
		u = nil
	}
	if u == nil {
		if s.node.IsLeader() || s.node.Current() {
			s.limiter.Fail(client) // a definite miss: ids are not to be guessed
		}
		s.notFound(w, "no such session: it expired, was logged out, or its token was revoked")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, UISessionView{Sealed: u.Sealed, TokenID: u.TokenID, CreatedAt: u.CreatedAt, ExpiresAt: u.ExpiresAt})
}

// deleteUISession ends the session of the id in the header (logout), on
// every node: the deletion is committed before the answer.
func (s *Server) deleteUISession(w http.ResponseWriter, r *http.Request) {
	id, ok := uiSessionID(w, r)
	if !ok {
		return
	}
	hash := HashUISessionID(id)
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		// Only the holder of a session id commits anything: a made-up id
		// costs the leader a map lookup, not a raft entry.
		if st.UISessions[hash] == nil {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: "no such session (already logged out or expired)"}
		}
		return &fsm.Command{Type: fsm.CmdDeleteUISession, Name: hash}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.log.Info("ui session ended")
	w.WriteHeader(http.StatusNoContent)
}

// sessionTokenValid reports whether the token a session was opened with
// still works: a scoped token not revoked or expired, or the operator token
// (the current one, or the one a rotation replaced while its grace lasts).
func sessionTokenValid(st *fsm.State, u *fsm.UISession, now time.Time) bool {
	if u.TokenID != fsm.OperatorTokenID {
		t := st.Tokens[u.TokenID]
		return t != nil && t.Usable(now) && equalHash(u.TokenHash, t.Hash)
	}
	return isOperatorHash(st, u.TokenHash, now)
}
