package ui

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSessions(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := newSessions(time.Hour, 2)
	s.now = func() time.Time { return now }

	a, sa := s.create("token-a")
	require.NotEqual(t, "token-a", a, "the session id is not the token")
	require.Len(t, a, 43, "256 random bits, base64url")
	require.Same(t, sa, s.get(a))
	require.True(t, sa.validCSRF(sa.csrf))

	tests := []struct {
		name string
		got  string
		ok   bool
	}{
		{"right", sa.csrf, true},
		{"empty", "", false},
		{"wrong", "x" + sa.csrf[1:], false},
		{"prefix", sa.csrf[:10], false},
	}
	for _, tc := range tests {
		t.Run("csrf "+tc.name, func(t *testing.T) {
			require.Equal(t, tc.ok, sa.validCSRF(tc.got))
		})
	}

	now = now.Add(time.Minute)
	b, _ := s.create("token-b")
	now = now.Add(time.Minute)
	c, _ := s.create("token-c") // full: the oldest (a) goes
	require.Nil(t, s.get(a))
	require.NotNil(t, s.get(b))
	require.NotNil(t, s.get(c))

	now = now.Add(time.Hour - 30*time.Second) // b expired, c not yet (created a minute later)
	require.Nil(t, s.get(b))
	require.NotNil(t, s.get(c))
	s.remove(c)
	require.Nil(t, s.get(c))
	require.Nil(t, s.get(""))
}
