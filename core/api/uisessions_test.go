package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

func TestUISessions(t *testing.T) {
	f := newFixture(t)
	reader := f.scopedToken(`{"scope":"read-only"}`)
	owner := f.scopedToken(`{"scope":"app-owner","apps":["web"]}`)
	join := f.joinToken(`{}`).Token
	sealed := base64.StdEncoding.EncodeToString([]byte("sealed token"))
	open := func(token, id, ttl string) int {
		t.Helper()
		body := fmt.Sprintf(`{"id_hash":%q,"sealed":%q,"ttl":%q}`, HashUISessionID(id), sealed, ttl)
		return f.do(request{method: http.MethodPost, path: "/v1/ui/sessions", token: token, body: body}).Code
	}
	lookup := func(id string) (int, UISessionView) {
		t.Helper()
		rec := f.do(request{method: http.MethodGet, path: "/v1/ui/sessions/current", header: map[string]string{HeaderUISession: id}})
		var v UISessionView
		if rec.Code == http.StatusOK {
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v))
		}
		return rec.Code, v
	}
	logout := func(id string) int {
		t.Helper()
		return f.do(request{method: http.MethodDelete, path: "/v1/ui/sessions/current", header: map[string]string{HeaderUISession: id}}).Code
	}

	tests := []struct {
		name  string
		token string
		body  string
		code  int
	}{
		{"no token", "", `{}`, http.StatusUnauthorized},
		{"join token", join, fmt.Sprintf(`{"id_hash":%q,"sealed":%q,"ttl":"1h"}`, HashUISessionID("j"), sealed), http.StatusUnauthorized},
		{"the id instead of its hash", operatorToken, fmt.Sprintf(`{"id_hash":"plain-id","sealed":%q,"ttl":"1h"}`, sealed), http.StatusBadRequest},
		{"nothing sealed", operatorToken, fmt.Sprintf(`{"id_hash":%q,"ttl":"1h"}`, HashUISessionID("a")), http.StatusBadRequest},
		{"ttl too long", operatorToken, fmt.Sprintf(`{"id_hash":%q,"sealed":%q,"ttl":"200h"}`, HashUISessionID("a"), sealed), http.StatusBadRequest},
		{"no ttl", operatorToken, fmt.Sprintf(`{"id_hash":%q,"sealed":%q}`, HashUISessionID("a"), sealed), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(request{method: http.MethodPost, path: "/v1/ui/sessions", token: tt.token, body: tt.body})
			require.Equal(t, tt.code, rec.Code, rec.Body.String())
		})
	}
	require.Empty(t, f.node.State().UISessions)

	// Every kind of user token opens a session (read-only and app-owner
	// tokens too: the session acts with the token's own limits).
	require.Equal(t, http.StatusCreated, open(operatorToken, "op-session", "1h"))
	require.Equal(t, http.StatusCreated, open(reader, "reader-session", "1h"))
	require.Equal(t, http.StatusCreated, open(owner, "owner-session", "1h"))
	require.Equal(t, http.StatusConflict, open(operatorToken, "op-session", "1h"))

	code, v := lookup("op-session")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []byte("sealed token"), v.Sealed)
	require.Equal(t, fsm.OperatorTokenID, v.TokenID)
	for id, st := range f.node.State().UISessions {
		require.NotContains(t, string(st.Sealed), "op-session", id)
		require.NotEqual(t, "op-session", id, "the state keys sessions by the id's hash")
	}
	code, _ = lookup("made-up")
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, http.StatusBadRequest, f.do(request{method: http.MethodGet, path: "/v1/ui/sessions/current"}).Code)

	// Logout ends the session; a made-up id commits nothing.
	index := f.node.State().Index
	require.Equal(t, http.StatusNotFound, logout("made-up"))
	require.Equal(t, index, f.node.State().Index, "an unknown session's logout is no raft entry")
	require.Equal(t, http.StatusNoContent, logout("op-session"))
	code, _ = lookup("op-session")
	require.Equal(t, http.StatusNotFound, code)

	// Revoking the token ends its sessions.
	var tokens []TokenView
	f.call(http.MethodGet, "/v1/tokens", "", http.StatusOK, &tokens)
	for _, tok := range tokens {
		if tok.Scope == fsm.ScopeReadOnly {
			f.call(http.MethodDelete, "/v1/tokens/"+tok.ID, "", http.StatusOK, nil)
		}
	}
	code, _ = lookup("reader-session")
	require.Equal(t, http.StatusNotFound, code)

	// Sessions expire.
	code, _ = lookup("owner-session")
	require.Equal(t, http.StatusOK, code)
	f.clock.Advance(time.Hour)
	code, _ = lookup("owner-session")
	require.Equal(t, http.StatusNotFound, code)
}

// TestUISessionLookupsAreRateLimited: looking up made-up session ids counts
// against the address like failed tokens do.
func TestUISessionLookupsAreRateLimited(t *testing.T) {
	f := newFixture(t)
	var last int
	for i := range 20 {
		last = f.do(request{method: http.MethodGet, path: "/v1/ui/sessions/current", header: map[string]string{HeaderUISession: fmt.Sprint("guess-", i)}}).Code
	}
	require.Equal(t, http.StatusTooManyRequests, last)
}

// TestUISessionsEndWithARotatedOperatorToken: a session opened with the
// operator token lasts while that token works: through a rotation's grace,
// not after it; one opened with the new token goes on.
func TestUISessionsEndWithARotatedOperatorToken(t *testing.T) {
	f := newFixture(t)
	sealed := base64.StdEncoding.EncodeToString([]byte("sealed token"))
	open := func(token, id string) {
		t.Helper()
		body := fmt.Sprintf(`{"id_hash":%q,"sealed":%q,"ttl":"12h"}`, HashUISessionID(id), sealed)
		rec := f.do(request{method: http.MethodPost, path: "/v1/ui/sessions", token: token, body: body})
		require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	}
	lookup := func(id string) int {
		return f.do(request{method: http.MethodGet, path: "/v1/ui/sessions/current", header: map[string]string{HeaderUISession: id}}).Code
	}
	open(operatorToken, "old-session")
	var rot RotationView
	f.call(http.MethodPost, "/v1/tokens/operator/rotate", `{"grace":"10m"}`, http.StatusOK, &rot)
	open(rot.Token, "new-session")
	require.Equal(t, http.StatusOK, lookup("old-session"), "during the grace")
	f.clock.Advance(10 * time.Minute)
	require.Equal(t, http.StatusNotFound, lookup("old-session"), "after it")
	require.Equal(t, http.StatusOK, lookup("new-session"))
}
