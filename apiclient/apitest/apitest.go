// Package apitest starts a real one-node Potluck core in-process (real raft,
// real HTTP on 127.0.0.1, no mesh) for tests of API clients: the CLI and the
// web UI. Hosts are Ready at registration, so fake hosts registered through
// the API count as capacity.
package apitest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/core/blobs/blobstest"
	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/pki"
	"potluck/core/server"
	"potluck/internal/freeport"
)

// Token is the operator token of cores started by Start.
const Token = "apitest-operator-token-0123456789"

// Core is a running one-node core.
type Core struct {
	URL    string
	Server *server.Server
	Client *apiclient.Client // with the operator token
}

// Start runs a one-node core until the test ends and waits until it leads.
func Start(t testing.TB) *Core {
	t.Helper()
	return StartCluster(t, 1)[0]
}

// StartCluster runs n core nodes in one raft group (node 0 is not
// necessarily the leader) and waits until every node knows every node's API
// address, so that followers can forward to the leader.
func StartCluster(t testing.TB, n int) []*Core {
	t.Helper()
	var peers []cluster.Peer
	var httpAddrs []string
	for i := range n {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("core%d", i+1), Addr: freeAddr(t)})
		httpAddrs = append(httpAddrs, freeAddr(t))
	}
	ca, err := pki.NewCA("apitest")
	require.NoError(t, err)
	var cores []*Core
	for i := range n {
		s, err := server.Start(server.Config{
			NodeID: peers[i].ID, DataDir: filepath.Join(t.TempDir(), peers[i].ID), RaftBind: peers[i].Addr,
			Peers: peers, ClusterCA: ca, Timing: cluster.FastTiming, HTTPAddr: httpAddrs[i], OperatorToken: Token,
			HeartbeatTTL: time.Hour, ReconcileInterval: 100 * time.Millisecond, DrainTime: 200 * time.Millisecond, ReadyOnRegister: true,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogOutput: io.Discard,
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		c, err := apiclient.New(s.URL(), Token)
		require.NoError(t, err)
		cores = append(cores, &Core{URL: s.URL(), Server: s, Client: c})
	}
	for _, c := range cores {
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			st, err := c.Client.Status(ctx)
			if err != nil || st.Health != "ok" || len(st.Nodes) != n {
				return false
			}
			for _, node := range st.Nodes {
				if node.APIURL == "" {
					return false
				}
			}
			return true
		}, 20*time.Second, 20*time.Millisecond, "core cluster did not settle")
	}
	return cores
}

// Leader returns the core that leads the group, waiting through an
// election (a loaded machine can lose a leader right after StartCluster).
func Leader(t testing.TB, cores []*Core) *Core {
	t.Helper()
	var leader *Core
	require.Eventually(t, func() bool {
		for _, c := range cores {
			if c.Server.Node.IsLeader() {
				leader = c
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond, "no leader")
	return leader
}

// Follower returns a core of the group that does not lead.
func Follower(t testing.TB, cores []*Core) *Core {
	t.Helper()
	for _, c := range cores {
		if !c.Server.Node.IsLeader() {
			return c
		}
	}
	t.Fatal("no follower")
	return nil
}

// freeAddr picks a free loopback port.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.TCP()
	require.NoError(t, err)
	return addr
}

// RegisterHost registers a fake host (no agent behind it) with a fresh join
// token; with ReadyOnRegister it is ready at once.
func (c *Core) RegisterHost(t testing.TB, name, role string, cpus float64, memoryMB int64) apiclient.Host {
	t.Helper()
	var key [32]byte
	_, err := rand.Read(key[:])
	require.NoError(t, err)
	req := apiclient.RegisterHostRequest{Name: name, Role: role, PublicKey: base64.StdEncoding.EncodeToString(key[:]),
		CPUs: cpus, MemoryMB: memoryMB, DiskMB: 10000}
	if role == "front" {
		req.Endpoint = "127.0.0.1:51999"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := c.Client.CreateToken(ctx, "apitest "+name, 0)
	require.NoError(t, err)
	joiner, err := apiclient.New(c.URL, tok.Token)
	require.NoError(t, err)
	reg, err := joiner.RegisterHost(ctx, req)
	require.NoError(t, err)
	return reg.Host
}

// CreateTokens writes n join tokens with ids t00000, t00001, … straight
// through raft (n API calls would be slow), for tests of long lists.
func (c *Core) CreateTokens(t testing.TB, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range n {
		res, err := c.Server.Node.Apply(ctx, &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: fmt.Sprintf("t%05d", i), Hash: fmt.Sprint(i)}})
		require.NoError(t, err)
		require.NoError(t, res.Err)
	}
}

// ReportInstances sends the heartbeat a follower relays for a Back (POST
// /v1/internal/heartbeat with the operator token): each instance in states
// is in that state, with message. It returns an error rather than failing
// t, so that a goroutine playing the Back may call it.
func (c *Core) ReportInstances(ctx context.Context, hostID, message string, states map[string]string) error {
	type report struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		Message string `json:"message,omitempty"`
	}
	hb := struct {
		HostID    string   `json:"host_id"`
		Instances []report `json:"instances"`
	}{HostID: hostID}
	for id, st := range states {
		hb.Instances = append(hb.Instances, report{ID: id, State: st, Message: message})
	}
	body, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL+"/v1/internal/heartbeat", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("heartbeat: HTTP %d", resp.StatusCode)
	}
	return nil
}

// DockerSaveTar builds a small archive shaped like `docker save` output
// (enough for the core; not loadable by Docker): blobstest.DockerSaveTar.
func DockerSaveTar(t testing.TB, tag string, layerBytes int) []byte {
	t.Helper()
	return blobstest.DockerSaveTar(t, tag, layerBytes)
}
