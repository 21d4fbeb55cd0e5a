package server

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBenchAgentListenerOnlyOnLoopback: the listener that lets a caller
// name any host refuses every address a remote machine could reach.
func TestBenchAgentListenerOnlyOnLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8403", true},
		{"[::1]:8403", true},
		{"127.8.9.10:0", true},
		{"0.0.0.0:8403", false},
		{"[::]:8403", false},
		{"192.168.1.5:8403", false},
		{"localhost:8403", false}, // a name may resolve anywhere
		{":8403", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			_, err := benchAgentAddr(tc.addr)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}
