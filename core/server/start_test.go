package server

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/cluster"
	"potluck/core/pki"
)

// A Start that fails part way releases what it opened: the API port, the
// raft port and raft.db (bolt's file lock would make the next Open wait
// forever), so a corrected config starts on the same ports and data dir.
func TestFailedStartReleasesWhatItOpened(t *testing.T) {
	ca, err := pki.NewCA("test")
	require.NoError(t, err)
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))
	cases := []struct {
		name         string
		misconfigure func(*Config)
		err          string
	}{
		{"CA file without a certificate", func(c *Config) { c.TLSCAFile = notPEM }, "holds no PEM certificate"},
		{"missing TLS certificate", func(c *Config) {
			c.TLSCertFile, c.TLSKeyFile = filepath.Join(t.TempDir(), "no.crt"), filepath.Join(t.TempDir(), "no.key")
		}, "TLS certificate"},
		{"joining mesh node without a tunnel address", func(c *Config) {
			c.JoinURL, c.Mesh, c.ClusterCA = "http://127.0.0.1:1", &MeshConfig{}, ca
		}, "needs an explicit tunnel address"},
		{"joining node without the cluster CA", func(c *Config) {
			c.JoinURL = "http://127.0.0.1:1"
		}, "needs the cluster CA"},
		{"mesh key file that is a directory", func(c *Config) {
			c.Mesh = &MeshConfig{KeyFile: t.TempDir()}
		}, "mesh key"},
		{"DNS without a zone", func(c *Config) { c.DNSAddr = "127.0.0.1:0" }, "at least one zone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addrs := reserveAddrs(t, 2)
			good := Config{
				NodeID: "core1", DataDir: t.TempDir(), RaftBind: addrs[0], HTTPAddr: addrs[1], OperatorToken: testToken,
				Timing: cluster.FastTiming, HeartbeatTTL: time.Hour, Logger: quietLogger(), RaftLogOutput: io.Discard,
			}
			bad := good
			tc.misconfigure(&bad)
			_, err := Start(bad)
			require.ErrorContains(t, err, tc.err)

			started := make(chan error, 1)
			go func() {
				s, err := Start(good)
				if err == nil {
					err = s.Close()
				}
				started <- err
			}()
			select {
			case err := <-started:
				require.NoError(t, err, "the failed start left its ports or data dir held")
			case <-time.After(30 * time.Second):
				t.Fatal("Start hangs after a failed start: raft.db is still locked")
			}
		})
	}
}
