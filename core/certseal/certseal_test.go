package certseal

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s, err := New(key)
	require.NoError(t, err)
	other, err := New(bytes.Repeat([]byte{8}, 32))
	require.NoError(t, err)
	secret := []byte("-----BEGIN EC PRIVATE KEY-----")
	sealed, err := s.Seal("certificates/x/a.example/a.example.key", secret)
	require.NoError(t, err)
	require.NotContains(t, string(sealed), "PRIVATE KEY")

	tests := []struct {
		name   string
		sealer *Sealer
		key    string
		value  []byte
		ok     bool
	}{
		{"same key and name", s, "certificates/x/a.example/a.example.key", sealed, true},
		{"moved to another name", s, "certificates/x/b.example/b.example.key", sealed, false},
		{"another cluster's key", other, "certificates/x/a.example/a.example.key", sealed, false},
		{"truncated", s, "certificates/x/a.example/a.example.key", sealed[:10], false},
		{"empty", s, "k", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.sealer.Open(tc.key, tc.value)
			if !tc.ok {
				require.ErrorIs(t, err, ErrOpen)
				return
			}
			require.NoError(t, err)
			require.Equal(t, secret, got)
		})
	}
	_, err = New([]byte("short"))
	require.Error(t, err)
}
