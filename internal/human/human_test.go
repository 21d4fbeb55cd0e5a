package human

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bare int64
		want int64
	}{
		{"512MiB", 1, 512 << 20}, {"512m", 1, 512 << 20}, {"512MB", 1, 512 << 20}, {"1.5G", 1, 3 << 29},
		{"1GiB", 1, 1 << 30}, {"2TB", 1, 2 << 40}, {"100", 1, 100}, {"256", 1 << 20, 256 << 20},
		{"300 B", 1, 300}, {" 1 KiB ", 1, 1024}, {"0.5k", 1, 512},
	} {
		got, err := ParseSize(tc.in, tc.bare)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"", "lots", "12 parsecs", "-1G", "1e999G", "GiB"} {
		_, err := ParseSize(bad, 1)
		require.Error(t, err, bad)
	}
}

func TestBytesAndAge(t *testing.T) {
	require.Equal(t, "512 B", Bytes(512))
	require.Equal(t, "1.5 MiB", Bytes(3<<19))
	now := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	require.Equal(t, "-", Age(time.Time{}, now))
	require.Equal(t, "42s", Age(now.Add(-42*time.Second), now))
	require.Equal(t, "5m", Age(now.Add(-5*time.Minute), now))
	require.Equal(t, "3h", Age(now.Add(-3*time.Hour), now))
	require.Equal(t, "9d", Age(now.Add(-9*24*time.Hour), now))
}
