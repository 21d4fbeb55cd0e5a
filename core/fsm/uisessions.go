package fsm

import (
	"encoding/hex"
	"sort"
	"time"
)

// Web UI sessions live in the replicated state so that a login on any core
// node is valid on all of them and a logout on any node ends it everywhere.
// Nothing secret is stored: a session is keyed by the hash of its random id
// (the cookie), and the token it acts with is sealed under a key derived
// from that id, so neither the state, a snapshot nor a backup can be used to
// act as the user without the browser's cookie (see core/ui).

// Limits of the UI sessions the state keeps.
const (
	// MaxUISessions bounds the live sessions: past it, a new login replaces
	// the session closest to its expiry.
	MaxUISessions = 1000
	// MaxUISessionSealed bounds a sealed token (a token is at most a few
	// hundred bytes).
	MaxUISessionSealed = 1024
)

// Commands on UI sessions.
const (
	// CmdCreateUISession records Command.UISession; sessions expired at the
	// command's Time are dropped first.
	CmdCreateUISession CommandType = "create_ui_session"
	// CmdDeleteUISession removes the session whose hash is Command.Name
	// (logout); an unknown one is not an error.
	CmdDeleteUISession CommandType = "delete_ui_session"
)

// UISession is one logged-in browser.
type UISession struct {
	// Hash is the hex sha256 of the session id the browser holds.
	Hash string `json:"hash"`
	// Sealed is the token the session acts with, sealed (AEAD) under a key
	// derived from the session id: only the holder of the id can open it.
	Sealed []byte `json:"sealed"`
	// TokenID is the scoped token the session was opened with, or
	// OperatorTokenID: revoking that token ends its sessions.
	TokenID string `json:"token_id"`
	// TokenHash is the hash of that token (as the state keeps tokens'), so
	// that an operator session ends with the operator token it was opened
	// with once a rotation's grace is over.
	TokenHash string    `json:"token_hash"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Live reports whether the session is still valid at now.
func (u *UISession) Live(now time.Time) bool { return now.Before(u.ExpiresAt) }

// ValidUISessionHash reports whether h is how a session is keyed: the
// lower-case hex sha256 of its id.
func ValidUISessionHash(h string) bool {
	b, err := hex.DecodeString(h)
	return err == nil && len(b) == 32 && hex.EncodeToString(b) == h
}

func (s *State) createUISession(c *Command) (string, error) {
	u := c.UISession
	switch {
	case u == nil || !ValidUISessionHash(u.Hash):
		return "", errf(CodeInvalid, "UI session needs the hex sha256 of its id")
	case len(u.Sealed) == 0 || len(u.Sealed) > MaxUISessionSealed:
		return "", errf(CodeInvalid, "UI session's sealed token must be 1-%d bytes", MaxUISessionSealed)
	case u.TokenID == "" || u.TokenHash == "":
		return "", errf(CodeInvalid, "UI session without the id and hash of its token")
	case !u.ExpiresAt.After(c.Time):
		return "", errf(CodeInvalid, "UI session expires before it starts")
	}
	if _, ok := s.UISessions[u.Hash]; ok {
		return "", errf(CodeConflict, "UI session exists")
	}
	// Sessions are replaced whole, never changed in place, so Clone shares
	// them; the map itself is copied here, where it changes.
	m := make(map[string]*UISession, len(s.UISessions)+1)
	for k, v := range s.UISessions {
		if v.Live(c.Time) {
			m[k] = v
		}
	}
	if len(m) >= MaxUISessions {
		// The one closest to its expiry goes (ties: lowest hash), in
		// sorted order so every node drops the same.
		keys := sortedKeys(m)
		sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]].ExpiresAt.Before(m[keys[j]].ExpiresAt) })
		for _, k := range keys[:len(m)-MaxUISessions+1] {
			delete(m, k)
		}
	}
	cp := *u
	cp.Sealed = append([]byte(nil), u.Sealed...)
	cp.CreatedAt = c.Time
	m[u.Hash] = &cp
	s.UISessions = m
	return u.Hash, nil
}

func (s *State) deleteUISession(c *Command) (string, error) {
	if !ValidUISessionHash(c.Name) {
		return "", errf(CodeInvalid, "UI session needs the hex sha256 of its id")
	}
	if _, ok := s.UISessions[c.Name]; !ok {
		return c.Name, nil
	}
	s.UISessions = without(s.UISessions, c.Name)
	return c.Name, nil
}

// UISession returns the live session with this hash at now, or nil.
func (s *State) UISession(hash string, now time.Time) *UISession {
	u := s.UISessions[hash]
	if u == nil || !u.Live(now) {
		return nil
	}
	return u
}
