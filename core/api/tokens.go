package api

import (
	"fmt"
	"net/http"
	"time"

	"potluck/core/fsm"
)

// Limits of a token request.
const (
	MaxTokenDescription = 256 // bytes of a description
	MaxTokenNames       = 64  // apps plus installations an app-owner token names
	// DefaultRotationGrace is how long a rotated-out operator token keeps
	// working; MaxRotationGrace bounds what a rotation may ask for.
	DefaultRotationGrace = time.Hour
	MaxRotationGrace     = 30 * 24 * time.Hour
)

type createTokenRequest struct {
	Description string `json:"description"`
	TTL         string `json:"ttl"` // e.g. "24h"; empty = no expiry
	// Scope is "join" (default), "app-owner" or "read-only".
	Scope         string   `json:"scope"`
	Apps          []string `json:"apps"`          // app-owner: apps it owns
	Installations []string `json:"installations"` // app-owner: further installations it owns
}

// check validates the request and returns its scope and TTL (0: no expiry).
func (req *createTokenRequest) check() (fsm.TokenScope, time.Duration, error) {
	var p problems
	if len(req.Description) > MaxTokenDescription {
		p.add("description longer than %d characters", MaxTokenDescription)
	}
	p.addErr(checkText("description", req.Description))
	scope := fsm.TokenScope(req.Scope)
	switch scope {
	case "", fsm.ScopeJoin:
		scope = fsm.ScopeJoin
		if len(req.Apps)+len(req.Installations) > 0 {
			p.add("apps and installations belong to app-owner tokens (scope app-owner)")
		}
	case fsm.ScopeReadOnly:
		if len(req.Apps)+len(req.Installations) > 0 {
			p.add("a read-only token reads everything: it names no apps or installations")
		}
	case fsm.ScopeAppOwner:
		if len(req.Apps)+len(req.Installations) == 0 {
			p.add("an app-owner token names at least one app or installation (apps, installations)")
		}
		if len(req.Apps)+len(req.Installations) > MaxTokenNames {
			p.add("an app-owner token names at most %d apps and installations", MaxTokenNames)
		}
		for _, a := range req.Apps {
			p.addErr(checkName("app", a))
		}
		for _, i := range req.Installations {
			p.addErr(checkName("installation", i))
		}
	default:
		p.add(`scope must be "join", "app-owner" or "read-only"`)
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			p.add("ttl must be a positive duration such as 24h")
		}
		ttl = d
	}
	return scope, ttl, p.err()
}

// TokenView is a join or scoped token without its secret.
type TokenView struct {
	ID            string         `json:"id"`
	Scope         fsm.TokenScope `json:"scope"`
	Apps          []string       `json:"apps,omitempty"`
	Installations []string       `json:"installations,omitempty"`
	Description   string         `json:"description,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	ExpiresAt     *time.Time     `json:"expires_at,omitempty"`
	Revoked       bool           `json:"revoked"`
	Token         string         `json:"token,omitempty"` // only in the create response
}

func tokenView(t *fsm.JoinToken) TokenView {
	return TokenView{ID: t.ID, Scope: t.ScopeOrJoin(), Apps: t.Apps, Installations: t.Installations,
		Description: t.Description, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked}
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req createTokenRequest
	if !s.decode(w, r, &req) {
		return
	}
	scope, ttl, err := req.check()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	secret, id := NewJoinToken()
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		t := &fsm.JoinToken{ID: id, Hash: HashToken(secret), Description: req.Description, Apps: req.Apps, Installations: req.Installations}
		if scope != fsm.ScopeJoin {
			t.Scope = scope // join tokens keep the empty scope older nodes know
		}
		if ttl > 0 {
			exp := now.Add(ttl)
			t.ExpiresAt = &exp
		}
		return &fsm.Command{Type: fsm.CmdCreateToken, Token: t}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	t := s.node.State().Tokens[res.Ref]
	if t == nil {
		writeError(w, http.StatusNotFound, "token was revoked meanwhile")
		return
	}
	v := tokenView(t)
	if !res.Replayed {
		v.Token = secret
	}
	s.log.Info("token created", "id", t.ID, "scope", t.ScopeOrJoin())
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	writePage(s, w, r, st.SortedTokens(), func(t *fsm.JoinToken) string { return t.ID }, tokenView)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdRevokeToken, Name: id}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.log.Info("token revoked", "id", res.Ref)
	writeJSON(w, http.StatusOK, tokenView(s.node.State().Tokens[res.Ref]))
}

type rotateRequest struct {
	Grace string `json:"grace"` // how long the old token keeps working; "" = DefaultRotationGrace, "0s" = not at all
}

// RotationView answers an operator-token rotation: the new token (shown
// once) and until when the old one works.
type RotationView struct {
	Token         string     `json:"token,omitempty"`
	PreviousUntil *time.Time `json:"previous_valid_until,omitempty"`
}

// rotateOperatorToken replaces the operator token. The old one keeps
// working for the grace, so clients move over without downtime; core nodes
// use their node token between themselves and are not affected.
func (s *Server) rotateOperatorToken(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest
	if r.ContentLength != 0 && !s.decode(w, r, &req) {
		return
	}
	grace := DefaultRotationGrace
	if req.Grace != "" {
		d, err := time.ParseDuration(req.Grace)
		if err != nil || d < 0 || d > MaxRotationGrace {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("grace must be a duration between 0s and %s, such as 1h", MaxRotationGrace))
			return
		}
		grace = d
	}
	secret := "op-" + newSecret()
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdRotateOperatorToken, OperatorTokenHash: HashToken(secret), Grace: grace}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	v := RotationView{PreviousUntil: s.node.State().PreviousOperatorUntil}
	if !res.Replayed {
		v.Token = secret
	}
	s.log.Info("operator token rotated", "grace", grace)
	writeJSON(w, http.StatusOK, v)
}
