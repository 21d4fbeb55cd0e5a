package localcluster

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPickLoopbackSkipsOctetsInUse: a cluster's publish addresses avoid
// those running containers are published on (CI lost an autoscale test to
// a container a killed run left on the same address and port).
func TestPickLoopbackSkipsOctetsInUse(t *testing.T) {
	all := map[byte]bool{}
	for b := 1; b <= 250; b++ {
		all[byte(b)] = true
	}
	tests := []struct {
		name string
		used map[byte]bool
		seed int64
		want byte
	}{
		{"free", nil, 41, 42},
		{"taken: the next free", map[byte]bool{42: true, 43: true}, 41, 44},
		{"wraps past 250", map[byte]bool{250: true}, 249, 1},
		{"negative seed", nil, -1, 250},
		{"all taken", all, 41, 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pickLoopback(tt.used, tt.seed)
			require.Equal(t, tt.want, got)
			require.NotZero(t, got)
		})
	}
}
