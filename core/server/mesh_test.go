package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/blobs/blobstest"
	"potluck/core/fsm"
	"potluck/meshnet"
)

// testHost is an agent stand-in: a real meshnet node that registers through
// the public API, answers the core's probe and talks to the agent API over
// the tunnel.
type testHost struct {
	node   *meshnet.Node
	client *http.Client
	agent  string // agent API base URL of a core node
	id     string
}

// freeUDPPort picks a free UDP port below the ephemeral range (see
// reserveAddrs).
func freeUDPPort(t *testing.T) uint16 {
	t.Helper()
	for attempt := 0; attempt < 1000; attempt++ {
		port := 20000 + mrand.IntN(12000)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		require.NoError(t, pc.Close())
		return uint16(port)
	}
	t.Fatal("no free UDP port")
	return 0
}

// startTestHost registers a host and peers it with every core node; it talks
// to the agent API of core node viaCore (a follower, to exercise forwarding).
func startTestHost(t *testing.T, c *testCluster, join, name, role string, viaCore int) *testHost {
	t.Helper()
	key, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	port := freeUDPPort(t)
	body := map[string]any{"name": name, "role": role, "public_key": key.Public().String(), "cpus": 2, "memory_mb": 2048, "disk_mb": 4096}
	if role == "front" {
		body["endpoint"] = fmt.Sprintf("127.0.0.1:%d", port)
	}
	r := call(t, "POST", c.nodes[0].URL()+"/v1/hosts", join, body, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var reg struct {
		Host       struct{ ID, Status string }
		TunnelAddr string `json:"tunnel_address"`
		CorePeers  []struct {
			ID         string `json:"id"`
			PublicKey  string `json:"public_key"`
			Endpoint   string `json:"endpoint"`
			TunnelAddr string `json:"tunnel_address"`
			AgentURL   string `json:"agent_url"`
		} `json:"core_peers"`
	}
	r.json(t, &reg)
	require.Equal(t, "pending", reg.Host.Status, "a host is not Ready before the tunnel probe")
	require.Len(t, reg.CorePeers, len(c.nodes))

	node, err := meshnet.New(meshnet.Config{PrivateKey: key, Address: netip.MustParseAddr(reg.TunnelAddr), ListenPort: port, ProbeInterval: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	var peers []meshnet.Peer
	for _, cp := range reg.CorePeers {
		pk, err := meshnet.ParsePublicKey(cp.PublicKey)
		require.NoError(t, err)
		peers = append(peers, meshnet.Peer{PublicKey: pk, Address: netip.MustParseAddr(cp.TunnelAddr), Endpoint: netip.MustParseAddrPort(cp.Endpoint), Hub: true})
	}
	require.NoError(t, node.SetPeers(peers))

	// The probe endpoint the core checks before the host becomes Ready.
	ln, err := node.Listen(DefaultProbePort)
	require.NoError(t, err)
	probe := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })}
	go func() { _ = probe.Serve(ln) }()
	t.Cleanup(func() { _ = probe.Close() })

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return node.DialContext(ctx, network, addr)
		},
	}}
	t.Cleanup(client.CloseIdleConnections)
	agent := ""
	for _, cp := range reg.CorePeers {
		if cp.ID == c.cfgs[viaCore].NodeID {
			agent = cp.AgentURL
		}
	}
	require.NotEmpty(t, agent)
	return &testHost{node: node, client: client, agent: agent, id: reg.Host.ID}
}

func (h *testHost) get(t *testing.T, path string) response {
	t.Helper()
	resp, err := h.client.Get(h.agent + path)
	if err != nil {
		return response{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: data, header: resp.Header}
}

func (h *testHost) heartbeat(t *testing.T, reports []agentproto.InstanceReport) response {
	t.Helper()
	data, err := json.Marshal(agentproto.HeartbeatRequest{Instances: reports})
	require.NoError(t, err)
	resp, err := h.client.Post(h.agent+"/v1/agent/heartbeat", "application/json", bytesReader(data))
	if err != nil {
		return response{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: body}
}

func TestMeshHostsAreProbedAndUseTheAgentAPIOverTheTunnel(t *testing.T) {
	c := newTestCluster(t, 3, func(_ int, cfg *Config) {
		key, err := meshnet.GeneratePrivateKey()
		require.NoError(t, err)
		cfg.Mesh = &MeshConfig{PrivateKey: &key, DecommissionGrace: 3 * time.Second}
	})
	join := c.joinToken(0)
	f := c.follower()
	back := startTestHost(t, c, join, "back0", "back", f)
	front := startTestHost(t, c, join, "front0", "front", f)

	// The core reaches both over the tunnel and marks them Ready.
	require.Eventually(t, func() bool {
		st := c.nodes[0].Node.FSM.State()
		return st.Hosts[back.id].Status == fsm.HostReady && st.Hosts[front.id].Status == fsm.HostReady
	}, 20*time.Second, 100*time.Millisecond, "hosts were not probed over the tunnel")

	tarball := blobstest.DockerSaveTar(t, "hello:1", 4096)
	r := c.call(0, "POST", "/v1/apps/hello/tarball?container_port=8080", tarball)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var app struct{ Digest string }
	r.json(t, &app)
	r = c.call(0, "POST", "/v1/installations", map[string]any{"name": "hello", "app": "hello", "fronts": 1, "backs": 1, "domain": "hello.example.com", "env": map[string]string{"GREETING": "hi"}})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	created, err := strconv.ParseUint(r.header.Get("X-Potluck-Index"), 10, 64)
	require.NoError(t, err)

	// The Back learns what to run, over the tunnel, identified by its key
	// (a blocking query, so the follower has applied the installation).
	r = back.get(t, fmt.Sprintf("/v1/agent/state?index=%d&wait=10s", created-1))
	require.Equal(t, http.StatusOK, r.code, r.String())
	var bs agentproto.DesiredState
	r.json(t, &bs)
	require.Equal(t, "back0", bs.Host.Name)
	require.Len(t, bs.Instances, 1)
	in := bs.Instances[0]
	require.Equal(t, "hello:1", in.Image)
	require.Equal(t, app.Digest, in.Digest)
	require.Equal(t, 8080, in.ContainerPort)
	require.Equal(t, "hi", in.Env["GREETING"])
	frontAddr := c.nodes[0].Node.FSM.State().Hosts[front.id].TunnelAddr.String()
	require.Equal(t, []string{frontAddr}, in.AllowedFrom)
	roles := map[string]int{}
	for _, p := range bs.Peers {
		roles[p.Role]++
	}
	require.Equal(t, map[string]int{"core": 3, "front": 1}, roles)

	// It downloads the image over the tunnel (once the blob reached this
	// follower).
	require.Eventually(t, func() bool { return c.nodes[f].Blobs.Has(app.Digest) }, 10*time.Second, 50*time.Millisecond)
	r = back.get(t, in.BlobPath)
	require.Equal(t, http.StatusOK, r.code, r.String())
	require.Equal(t, tarball, r.body)
	// The Front may not: no instance of its own uses the blob.
	r = front.get(t, in.BlobPath)
	require.Equal(t, http.StatusForbidden, r.code, r.String())

	// The Front learns its route.
	r = front.get(t, "/v1/agent/state")
	require.Equal(t, http.StatusOK, r.code, r.String())
	var fs agentproto.DesiredState
	r.json(t, &fs)
	require.Len(t, fs.Routes, 1)
	require.Equal(t, "hello.example.com", fs.Routes[0].Domain)
	backAddr := c.nodes[0].Node.FSM.State().Hosts[back.id].TunnelAddr
	require.Equal(t, netip.AddrPortFrom(backAddr, uint16(in.Port)).String(), fs.Routes[0].Backends[0].Address)

	// Heartbeat with an instance report; the state follows.
	// Heartbeat (to a follower, which forwards it to the leader) with an
	// instance report; the state follows.
	require.Eventually(t, func() bool { // agents retry while leadership moves
		return back.heartbeat(t, []agentproto.InstanceReport{{ID: in.ID, State: fsm.InstanceRunning}}).code == http.StatusNoContent
	}, 10*time.Second, 100*time.Millisecond)
	c.waitConverged()
	require.Equal(t, fsm.InstanceRunning, c.nodes[c.leader()].Node.FSM.State().Instances[in.ID].State)
	r = back.heartbeat(t, []agentproto.InstanceReport{{ID: in.ID, State: "exploded"}})
	require.Equal(t, http.StatusBadRequest, r.code, r.String())

	// Blocking query: wakes up when the installation is deleted.
	c.waitConverged()
	idx := c.nodes[f].Node.FSM.State().Index
	done := make(chan response, 1)
	go func() { done <- front.get(t, fmt.Sprintf("/v1/agent/state?index=%d&wait=20s", idx)) }()
	time.Sleep(200 * time.Millisecond)
	r = c.call(0, "DELETE", "/v1/installations/hello", nil)
	require.Equal(t, http.StatusNoContent, r.code, r.String())
	r = <-done
	require.Equal(t, http.StatusOK, r.code, r.String())
	r.json(t, &fs)
	// It woke at the deletion's first step: the instance drains, unrouted.
	require.Len(t, fs.Routes, 1)
	require.Equal(t, agentproto.InstanceDraining, fs.Routes[0].Backends[0].State)
	c.waitConverged()
	r = front.get(t, "/v1/agent/state")
	r.json(t, &fs)
	require.Empty(t, fs.Routes, "gone once drained (DELETE answered then)")

	// A decommissioned host is told to stand down (410 Gone), also on a
	// blocking query that was waiting when it happened; after the grace the
	// core drops it as a peer.
	c.waitConverged()
	idx = c.nodes[f].Node.FSM.State().Index
	go func() { done <- front.get(t, fmt.Sprintf("/v1/agent/state?index=%d&wait=20s", idx)) }()
	time.Sleep(200 * time.Millisecond)
	r = c.call(0, "POST", "/v1/hosts/front0/decommission", nil)
	require.Equal(t, http.StatusOK, r.code, r.String())
	r = <-done
	require.Equal(t, http.StatusGone, r.code, r.String())
	r = front.get(t, "/v1/agent/state")
	require.Equal(t, http.StatusGone, r.code, r.String())
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", front.agent+"/v1/agent/state", nil)
		require.NoError(t, err)
		resp, err := front.client.Do(req)
		if err != nil {
			return true // the core removed the peer: the tunnel is gone
		}
		resp.Body.Close()
		return false
	}, 15*time.Second, 100*time.Millisecond, "the core kept the decommissioned host as a peer")
	require.Equal(t, fsm.HostDecommissioned, c.nodes[f].Node.FSM.State().Hosts[front.id].Status)
}
