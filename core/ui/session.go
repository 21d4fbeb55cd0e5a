package ui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// session is one logged-in browser. The cookie carries only the random
// session id; the operator token stays on the server (it is needed to call
// the API on the user's behalf) and is never logged.
type session struct {
	token   string
	csrf    string
	expires time.Time
	flash   *flash // shown once by the next page
}

// flash is a one-time message after a redirect.
type flash struct {
	msg   string
	isErr bool
}

// sessions is an in-memory, bounded session store. Sessions are per core
// node and do not survive a restart: logging in again is cheap.
type sessions struct {
	mu    sync.Mutex
	byID  map[string]*session
	ttl   time.Duration
	limit int
	now   func() time.Time
}

func newSessions(ttl time.Duration, limit int) *sessions {
	return &sessions{byID: map[string]*session{}, ttl: ttl, limit: limit, now: time.Now}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create stores a session for token and returns its id.
func (s *sessions) create(token string) (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if len(s.byID) >= s.limit {
		// Drop expired sessions; if still full, the one closest to expiry.
		var oldestID string
		var oldest time.Time
		for id, se := range s.byID {
			if !now.Before(se.expires) {
				delete(s.byID, id)
				continue
			}
			if oldestID == "" || se.expires.Before(oldest) {
				oldestID, oldest = id, se.expires
			}
		}
		if len(s.byID) >= s.limit {
			delete(s.byID, oldestID)
		}
	}
	id := randomToken()
	se := &session{token: token, csrf: randomToken(), expires: now.Add(s.ttl)}
	s.byID[id] = se
	return id, se
}

// get returns the live session with this id. The map lookup is not
// constant-time, but ids are 256-bit random values: guessing one by timing
// is not practical, and the lookup reveals nothing about other sessions.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.byID[id]
	if se == nil {
		return nil
	}
	if !s.now().Before(se.expires) {
		delete(s.byID, id)
		return nil
	}
	return se
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

func (s *sessions) setFlash(id string, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if se := s.byID[id]; se != nil {
		se.flash = &f
	}
}

func (s *sessions) takeFlash(id string) (flash, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.byID[id]
	if se == nil || se.flash == nil {
		return flash{}, false
	}
	f := *se.flash
	se.flash = nil
	return f, true
}

// validCSRF compares a submitted CSRF token in constant time.
func (se *session) validCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(se.csrf)) == 1
}
