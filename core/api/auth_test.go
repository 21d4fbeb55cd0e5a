package api

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAuth(t *testing.T) {
	f := newFixture(t)
	valid := f.joinToken(`{"description":"lender a"}`)
	revoked := f.joinToken(`{}`)
	f.call(http.MethodDelete, "/v1/tokens/"+revoked.ID, "", http.StatusOK, nil)
	expiring := f.joinToken(`{"ttl":"1h"}`)
	f.clock.Advance(time.Hour) // expiring is now expired: ExpiresAt is not after now

	const (
		missing  = "missing bearer token: send Authorization: Bearer <token>"
		operator = "token is not valid for this call (operator token required)"
		join     = "join token is unknown, revoked or expired"
	)
	tests := []struct {
		name   string
		req    request
		status int
		error  string
	}{
		{"no token", request{method: "GET", path: "/v1/hosts"}, 401, missing},
		{"basic auth is not a bearer token", request{method: "GET", path: "/v1/hosts", header: map[string]string{"Authorization": "Basic b3A6c2VjcmV0"}}, 401, missing},
		{"operator reads", request{method: "GET", path: "/v1/hosts", token: operatorToken}, 200, ""},
		{"operator status", request{method: "GET", path: "/v1/status", token: operatorToken}, 200, ""},
		{"wrong token", request{method: "GET", path: "/v1/hosts", token: "not-the-operator-token"}, 401, operator},
		{"operator token with a suffix", request{method: "GET", path: "/v1/hosts", token: operatorToken + "x"}, 401, operator},
		{"join token may not read", request{method: "GET", path: "/v1/hosts", token: valid.Token}, 401, operator},
		{"join token may not create tokens", request{method: "POST", path: "/v1/tokens", token: valid.Token, body: `{}`}, 401, operator},
		{"join token registers", request{method: "POST", path: "/v1/hosts", token: valid.Token, body: registerBody("b1", "back", 1)}, 201, ""},
		{"revoked join token", request{method: "POST", path: "/v1/hosts", token: revoked.Token, body: registerBody("b2", "back", 2)}, 401, join},
		{"expired join token", request{method: "POST", path: "/v1/hosts", token: expiring.Token, body: registerBody("b3", "back", 3)}, 401, join},
		{"join token id with a wrong secret", request{method: "POST", path: "/v1/hosts", token: valid.ID + ".forged", body: registerBody("b4", "back", 4)}, 401, join},
		{"join token of unknown id", request{method: "POST", path: "/v1/hosts", token: "ffffffff.secret", body: registerBody("b5", "back", 5)}, 401, join},
		{"not shaped like a join token", request{method: "POST", path: "/v1/hosts", token: "no-dot", body: registerBody("b6", "back", 6)}, 401, join},
		{"metrics need the operator token on the public listener", request{method: "GET", path: "/metrics"}, 401, missing},
		{"metrics for the operator", request{method: "GET", path: "/metrics", token: operatorToken}, 200, ""},
		{"metrics not for a join token", request{method: "GET", path: "/metrics", token: valid.Token}, 401, operator},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if tc.error != "" {
				require.Equal(t, tc.error, errorOf(t, rec))
			}
		})
	}

	// A host remembers the join token it registered with.
	h := f.node.State().HostByName("b1")
	require.NotNil(t, h)
	require.Equal(t, valid.ID, h.TokenID)
}

func TestHashTokenAndJoinTokenShape(t *testing.T) {
	tok, id := NewJoinToken()
	require.Len(t, id, 8)
	require.Regexp(t, `^[0-9a-f]{8}\.[A-Za-z0-9_-]{43}$`, tok)
	require.True(t, len(HashToken(tok)) == 64)
	require.Equal(t, HashToken(tok), HashToken(tok))
	other, _ := NewJoinToken()
	require.NotEqual(t, HashToken(tok), HashToken(other))
}
