package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"potluck/core/fsm"
)

// MaxTokenDescription is the longest description of a join token, in bytes.
const MaxTokenDescription = 256

type createTokenRequest struct {
	Description string `json:"description"`
	TTL         string `json:"ttl"` // e.g. "24h"; empty = no expiry
}

// check validates the request and returns its TTL (0: no expiry).
func (req *createTokenRequest) check() (time.Duration, error) {
	if len(req.Description) > MaxTokenDescription {
		return 0, fmt.Errorf("description longer than %d characters", MaxTokenDescription)
	}
	if req.TTL == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(req.TTL)
	if err != nil || d <= 0 {
		return 0, errors.New("ttl must be a positive duration such as 24h")
	}
	return d, nil
}

// TokenView is a join token without its secret.
type TokenView struct {
	ID          string     `json:"id"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Revoked     bool       `json:"revoked"`
	Token       string     `json:"token,omitempty"` // only in the create response
}

func tokenView(t *fsm.JoinToken) TokenView {
	return TokenView{ID: t.ID, Description: t.Description, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked}
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req createTokenRequest
	if !s.decode(w, r, &req) {
		return
	}
	ttl, err := req.check()
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	secret, id := NewJoinToken()
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		t := &fsm.JoinToken{ID: id, Hash: HashToken(secret), Description: req.Description}
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
	writeJSON(w, http.StatusOK, tokenView(s.node.State().Tokens[res.Ref]))
}
