package ui

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestSessionSecrets: the token is sealed under the session id (only that
// id opens it), the CSRF token and the notice's signature are derived from
// the id, and all are compared in constant time (subtle, hmac.Equal).
func TestSessionSecrets(t *testing.T) {
	id, other := randomToken(), randomToken()
	require.Len(t, id, 43, "256 random bits, base64url")

	sealed, err := sealToken(id, "operator-token")
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "operator-token")
	again, err := sealToken(id, "operator-token")
	require.NoError(t, err)
	require.NotEqual(t, sealed, again, "a fresh nonce each time")
	tok, err := openToken(id, sealed)
	require.NoError(t, err)
	require.Equal(t, "operator-token", tok)
	for name, bad := range map[string][]byte{"other id": sealed, "short": sealed[:5], "flipped": append(append([]byte(nil), sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1)} {
		t.Run("open "+name, func(t *testing.T) {
			key := id
			if name == "other id" {
				key = other
			}
			_, err := openToken(key, bad)
			require.Error(t, err)
		})
	}

	se := newSession(id, "operator-token")
	require.Equal(t, se.csrf, newSession(id, "x").csrf, "every node derives the same CSRF token")
	require.NotEqual(t, se.csrf, newSession(other, "operator-token").csrf)
	tests := []struct {
		name string
		got  string
		ok   bool
	}{
		{"right", se.csrf, true},
		{"empty", "", false},
		{"one character changed", otherFirst(se.csrf), false},
		{"prefix", se.csrf[:10], false},
		{"another session's", newSession(other, "t").csrf, false},
	}
	for _, tc := range tests {
		t.Run("csrf "+tc.name, func(t *testing.T) {
			require.Equal(t, tc.ok, se.validCSRF(tc.got))
		})
	}

	v := se.flashValue(flash{msg: "App hello uploaded.", isErr: false})
	f, ok := se.openFlash(v)
	require.True(t, ok)
	require.Equal(t, flash{msg: "App hello uploaded."}, f)
	f, ok = se.openFlash(se.flashValue(flash{msg: "failed", isErr: true}))
	require.True(t, ok)
	require.True(t, f.isErr)
	long, ok := se.openFlash(se.flashValue(flash{msg: strings.Repeat("x", 10_000)}))
	require.True(t, ok)
	require.Less(t, len(long.msg), maxFlash+10, "bounded, so the cookie stays small")
	// A cut inside a multi-byte character must not leave half of it.
	accented, ok := se.openFlash(se.flashValue(flash{msg: "x" + strings.Repeat("é", 2_000)}))
	require.True(t, ok)
	require.True(t, utf8.ValidString(accented.msg), "cut on a character boundary")
	payload, _, _ := strings.Cut(v, ".")
	for name, bad := range map[string]string{
		"another session's": newSession(other, "t").flashValue(flash{msg: "evil"}),
		"unsigned":          payload,
		"bad signature":     payload + ".AAAA",
		"empty":             "",
	} {
		t.Run("flash "+name, func(t *testing.T) {
			_, ok := se.openFlash(bad)
			require.False(t, ok)
		})
	}
}

// otherFirst is s with its first character replaced by another one.
func otherFirst(s string) string {
	if s[0] == 'x' {
		return "y" + s[1:]
	}
	return "x" + s[1:]
}
