package ui

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/internal/jsonhttp"
)

// Sessions are kept by the cluster, not by this node: the UI on any core
// node opens one through the API (POST /v1/ui/sessions), which commits it
// to the replicated state, and finds it again by the id in the browser's
// cookie (GET /v1/ui/sessions/current, answered from the leader's state),
// so a login on one node is valid on all of them and a logout on any node
// ends it everywhere.
//
// The state holds no secret: the session is keyed by the sha256 of its
// random id, and the token it acts with is sealed (AES-256-GCM) under a key
// derived from the id (HKDF-SHA256). The CSRF token and the signature of the
// one-time notice cookie are derived from the id too, so every node computes
// the same ones without storing them.

// flashCookie carries the one-time notice shown by the page after a
// redirect, signed with a key of the session.
const flashCookie = "potluck_flash"

// maxFlash bounds a notice, so the cookie stays far below 4 KiB.
const maxFlash = 1500

// errNoSession: the cluster knows no such session (expired, logged out, or
// its token was revoked).
var errNoSession = errors.New("no such session")

// session is one logged-in browser as this request sees it.
type session struct {
	id    string // the cookie's value; never logged
	token string // opened from the sealed copy; never logged
	csrf  string
	// stale: found in this node's own copy of the state because no leader
	// could confirm it (see get); such a session only reads.
	stale bool
}

// flash is a one-time message after a redirect.
type flash struct {
	msg   string
	isErr bool
}

// sessions opens, finds and ends sessions through the API.
type sessions struct {
	api *http.Client // the in-process transport to the API
	ttl time.Duration
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// derive returns a 32-byte key for purpose from the session id.
func derive(id, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, []byte(id), nil, "potluck ui session: "+purpose, 32)
	if err != nil {
		panic(err) // only for lengths HKDF cannot give
	}
	return k
}

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func newSession(id, token string) *session {
	return &session{id: id, token: token, csrf: base64.RawURLEncoding.EncodeToString(derive(id, "csrf"))}
}

func sealToken(id, token string) ([]byte, error) {
	aead, err := sessionAEAD(id)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(token)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(token), []byte(hashID(id))), nil
}

func openToken(id string, sealed []byte) (string, error) {
	aead, err := sessionAEAD(id)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed token too short")
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(hashID(id)))
	if err != nil {
		return "", fmt.Errorf("opening the session's token: %w", err)
	}
	return string(plain), nil
}

func sessionAEAD(id string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(derive(id, "token"))
	if err != nil {
		return nil, fmt.Errorf("session cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// create opens a session for token, valid on every core node.
func (s *sessions) create(ctx context.Context, token string) (*session, error) {
	id := randomToken()
	sealed, err := sealToken(id, token)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"id_hash": hashID(id), "sealed": sealed, "ttl": s.ttl.String()}
	if err := s.call(ctx, http.MethodPost, "/v1/ui/sessions", token, "", body, nil); err != nil {
		return nil, err
	}
	return newSession(id, token), nil
}

// get finds the session with this id in the leader's state: errNoSession
// when the cluster has none, another error when it cannot say. Without a
// leader (503, or at once when leaderKnown is false) this node's own copy
// answers instead, so that an operator still sees the pages, and Main's
// "no leader" status; the session is then marked stale and refused for
// anything but reading, because a logout committed a moment ago may not
// have reached this copy.
func (s *sessions) get(ctx context.Context, id string, leaderKnown bool) (*session, error) {
	if id == "" || len(id) > 128 {
		return nil, errNoSession
	}
	var v struct {
		Sealed []byte `json:"sealed"`
	}
	stale, err := !leaderKnown, error(nil)
	if leaderKnown {
		err = s.call(ctx, http.MethodGet, "/v1/ui/sessions/current", "", id, nil, &v)
		stale = jsonhttp.StatusOf(err) == http.StatusServiceUnavailable
	}
	if stale {
		serr := s.call(ctx, http.MethodGet, "/v1/ui/sessions/current?stale", "", id, nil, &v)
		if serr == nil || !leaderKnown {
			err = serr // with no leader to ask, the copy's answer is the answer
		}
	}
	if err != nil {
		return nil, err
	}
	token, err := openToken(id, v.Sealed)
	if err != nil {
		return nil, errNoSession // not sealed under this id: not this browser's session
	}
	se := newSession(id, token)
	se.stale = stale
	return se, nil
}

// remove ends the session everywhere; one already gone is no error.
func (s *sessions) remove(ctx context.Context, id string) error {
	err := s.call(ctx, http.MethodDelete, "/v1/ui/sessions/current", "", id, nil, nil)
	if errors.Is(err, errNoSession) {
		return nil
	}
	return err
}

// call sends one JSON request to the API; a 404 is errNoSession.
func (s *sessions) call(ctx context.Context, method, path, token, id string, body, out any) error {
	h := http.Header{}
	if id != "" {
		h.Set(apiclient.HeaderUISession, id)
	}
	err := jsonhttp.Do(ctx, s.api, jsonhttp.Request{Method: method, URL: "http://core.invalid" + path, Token: token, Header: h, Body: body}, out, 64<<10)
	if jsonhttp.StatusOf(err) == http.StatusNotFound {
		return errNoSession
	}
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}

// validCSRF compares a submitted CSRF token in constant time.
func (se *session) validCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(se.csrf)) == 1
}

// flashValue is the signed cookie value of f for this session.
func (se *session) flashValue(f flash) string {
	msg := f.msg
	if len(msg) > maxFlash {
		msg = strings.ToValidUTF8(msg[:maxFlash], "") + "…" // drops a character the cut split
	}
	kind := "n"
	if f.isErr {
		kind = "e"
	}
	payload := base64.RawURLEncoding.EncodeToString([]byte(kind + msg))
	return payload + "." + base64.RawURLEncoding.EncodeToString(se.flashMAC(payload))
}

func (se *session) flashMAC(payload string) []byte {
	m := hmac.New(sha256.New, derive(se.id, "flash"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// openFlash checks a notice cookie's signature: a notice of another
// session, or one made up, is not shown.
func (se *session) openFlash(v string) (flash, bool) {
	payload, sig, ok := strings.Cut(v, ".")
	if !ok {
		return flash{}, false
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, se.flashMAC(payload)) {
		return flash{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || len(b) == 0 {
		return flash{}, false
	}
	return flash{msg: string(b[1:]), isErr: b[0] == 'e'}, true
}
