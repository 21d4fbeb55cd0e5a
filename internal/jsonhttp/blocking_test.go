package jsonhttp

import (
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseBlockingQuery(t *testing.T) {
	tests := []struct {
		query    string
		index    uint64
		wait     time.Duration
		blocking bool
		err      string
	}{
		{"", 0, 0, false, ""},
		{"wait=30s", 0, 0, false, ""},
		{"index=7", 7, DefaultWait, true, ""},
		{"index=7&wait=30s", 7, 30 * time.Second, true, ""},
		{"index=7&wait=1h", 7, MaxWait, true, ""},
		{"index=abc", 0, 0, false, "index must be"},
		{"index=-1", 0, 0, false, "index must be"},
		{"index=7&wait=0s", 0, 0, false, "wait must be"},
		{"index=7&wait=soon", 0, 0, false, "wait must be"},
	}
	for _, tc := range tests {
		q, err := url.ParseQuery(tc.query)
		require.NoError(t, err)
		index, wait, blocking, err := ParseBlockingQuery(q)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.query)
			continue
		}
		require.NoError(t, err, tc.query)
		require.Equal(t, tc.index, index, tc.query)
		require.Equal(t, tc.wait, wait, tc.query)
		require.Equal(t, tc.blocking, blocking, tc.query)
	}
}
