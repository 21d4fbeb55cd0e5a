package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agent"
	"potluck/core/cluster"
	"potluck/core/pki"
	"potluck/core/server"
	"potluck/internal/freeport"
	"potluck/meshnet"
)

// TestTLSEndToEnd follows docs/operations.md "TLS for the API": a core
// API certificate from a private CA (`potluck-core ca issue-api`), the CLI
// with --ca, an agent with --core-ca. Without the CA both refuse the core.
func TestTLSEndToEnd(t *testing.T) {
	dir := t.TempDir()
	apiCA, err := pki.NewCA("api")
	require.NoError(t, err)
	certPEM, keyPEM, err := apiCA.IssueAPI([]string{"127.0.0.1", "localhost"}, time.Hour)
	require.NoError(t, err)
	certFile, keyFile, caFile := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key"), filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o644))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	require.NoError(t, os.WriteFile(caFile, apiCA.CertPEM(), 0o644))

	meshKey, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	const token = "tls-test-operator-token-0123456789"
	raftAddr, err := freeport.TCP()
	require.NoError(t, err)
	httpAddr, err := freeport.TCP()
	require.NoError(t, err)
	core, err := server.Start(server.Config{
		NodeID: "core1", DataDir: filepath.Join(dir, "core1"), RaftBind: raftAddr, HTTPAddr: httpAddr,
		TLSCertFile: certFile, TLSKeyFile: keyFile, TLSCAFile: caFile, OperatorToken: token,
		Timing: cluster.FastTiming, HeartbeatTTL: time.Hour, ReconcileInterval: 100 * time.Millisecond,
		Mesh:   &server.MeshConfig{PrivateKey: &meshKey},
		Logger: slog.New(slog.DiscardHandler), RaftLogOutput: io.Discard,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = core.Close() })
	require.True(t, strings.HasPrefix(core.URL(), "https://"), core.URL())
	require.Eventually(t, func() bool {
		c := core.Node.FSM.State().CoreNodes["core1"]
		return c != nil && c.PublicKey != ""
	}, 20*time.Second, 20*time.Millisecond, "the core did not record its mesh key")

	vars := map[string]string{"POTLUCK_ADDR": core.URL(), "POTLUCK_TOKEN": token}
	r := potluck(t, vars, false, "status", "--ca", caFile)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "health ok")
	configFile := filepath.Join(dir, "config")
	require.NoError(t, os.WriteFile(configFile, []byte("addr = "+core.URL()+"\ntoken = "+token+"\nca = "+caFile+"\n"), 0o600))
	r = potluck(t, map[string]string{}, false, "status", "--config", configFile)
	require.Zero(t, r.code, r.stderr)
	r = potluck(t, vars, false, "status")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "certificate signed by unknown authority", "without the CA the CLI refuses the core")

	r = potluck(t, vars, false, "tokens", "create", "--ca", caFile, "--description", "tls test")
	require.Zero(t, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	join := lines[len(lines)-1]

	cfg := agent.Config{CoreURLs: []string{core.URL()}, JoinToken: join, Name: "back1", Role: "back",
		CPUs: 1, MemoryMB: 512, DiskMB: 1024, DataDir: filepath.Join(dir, "agent-no-ca"), RegisterTimeout: time.Second}
	_, err = agent.Start(context.Background(), cfg)
	require.ErrorContains(t, err, "certificate signed by unknown authority", "without the CA the agent refuses the core")

	cfg.CoreCAFile, cfg.DataDir = caFile, filepath.Join(dir, "agent")
	a, err := agent.Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	require.NotEmpty(t, a.Identity().HostID)
	r = potluck(t, vars, false, "hosts", "show", "back1", "--ca", caFile)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "measured")
}
