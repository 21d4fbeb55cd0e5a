package front

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agent"
	"potluck/agentproto"
	"potluck/internal/freeport"
	"potluck/meshnet"
)

func freeUDPPort(t *testing.T) uint16 {
	p, err := freeport.UDP()
	require.NoError(t, err)
	return p
}

func writeJSONFile(t *testing.T, path string, v any) {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// savedFront is what front1's runs share: its data directory, mesh key
// (kept in dir) and UDP port, and its tunnel address.
type savedFront struct {
	dir  string
	key  meshnet.PublicKey
	port uint16
	addr netip.Addr
}

func newSavedFront(t *testing.T) savedFront {
	t.Helper()
	dir := t.TempDir()
	key, err := meshnet.LoadOrCreatePrivateKey(filepath.Join(dir, "wg.key"))
	require.NoError(t, err)
	return savedFront{dir: dir, key: key.Public(), port: freeUDPPort(t), addr: netip.MustParseAddr("100.64.1.1")}
}

// testBack is a Back: a real mesh node serving an app on its tunnel port
// 5000.
type testBack struct {
	key  meshnet.PrivateKey
	addr netip.Addr
	node *meshnet.Node
}

// startBack starts a Back at addr (cfg's key and address are set here). It
// is behind NAT, so it initiates to the Front (a hub). It stops when the
// test ends.
func startBack(t *testing.T, fr savedFront, addr string, cfg meshnet.Config, app http.HandlerFunc) testBack {
	t.Helper()
	key, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	cfg.PrivateKey, cfg.Address = key, netip.MustParseAddr(addr)
	n, err := meshnet.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { n.Close() })
	require.NoError(t, n.UpsertPeer(meshnet.Peer{PublicKey: fr.key, Address: fr.addr,
		Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), fr.port), Hub: true}))
	ln, err := n.Listen(5000)
	require.NoError(t, err)
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return testBack{key: key, addr: cfg.Address, node: n}
}

// peer is b as the core lists it to the Front.
func (b testBack) peer(name string) agentproto.Peer {
	return agentproto.Peer{Name: name, Role: "back", PublicKey: b.key.Public().String(), TunnelAddr: b.addr.String()}
}

// writeSavedFront writes what an earlier run of front1 left in fr.dir: its
// identity (one core node, which never answers) and the desired state d.
func writeSavedFront(t *testing.T, fr savedFront, d agentproto.DesiredState) {
	t.Helper()
	coreKey, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	writeJSONFile(t, filepath.Join(fr.dir, "identity.json"), agent.Identity{
		HostID: "h-front1", Name: "front1", Role: "front", TunnelAddr: fr.addr,
		CorePeers: []agentproto.CorePeer{{ID: "core1", PublicKey: coreKey.Public().String(), Endpoint: "127.0.0.1:9", TunnelAddr: "100.64.0.1", AgentURL: "http://100.64.0.1:7400"}},
	})
	writeJSONFile(t, filepath.Join(fr.dir, "desired.json"), d)
}

// runFront starts front1 from fr with no core reachable (127.0.0.1:1
// refuses at once), serves plain HTTP on a free port and follows; stop
// shuts it down gracefully.
func runFront(t *testing.T, fr savedFront) (f *Front, addr string, stop func()) {
	t.Helper()
	f, err := Start(context.Background(), Config{Agent: agent.Config{
		CoreURLs: []string{"http://127.0.0.1:1"}, Name: "front1", CPUs: 1, MemoryMB: 256, DiskMB: 1024,
		Endpoint: fmt.Sprintf("127.0.0.1:%d", fr.port), MeshPort: fr.port, DataDir: fr.dir,
	}})
	require.NoError(t, err)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go f.Serve(plain)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	return f, plain.Addr().String(), func() {
		cancel()
		<-done
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		f.Shutdown(sctx)
	}
}

// A Front that restarts while no core node answers serves the routes it saved
// last, reaching its Back over the mesh.
func TestFrontRestartedWithoutCoreServesLastGoodRoutes(t *testing.T) {
	fr := newSavedFront(t)
	back := startBack(t, fr, "100.64.1.2", meshnet.Config{}, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "served from the last known routes")
	})

	// What the previous run saved: its identity and its last desired state.
	writeSavedFront(t, fr, agentproto.DesiredState{
		Index: 42,
		Peers: []agentproto.Peer{back.peer("back1")},
		Routes: []agentproto.Route{{Installation: "hello", Domain: "hello.test", Backends: []agentproto.Backend{
			{InstanceID: "i-1", Address: "100.64.1.2:5000", State: agentproto.InstanceRunning}}}},
	})
	f, addr, stop := runFront(t, fr)
	defer stop()

	var body string
	require.Eventually(t, func() bool {
		code, b, err := getWith(&http.Client{Timeout: 3 * time.Second}, addr)
		body = b
		return err == nil && code == 200
	}, 20*time.Second, 100*time.Millisecond)
	require.Equal(t, "served from the last known routes", body)

	// The admin listener shows the agent, the mesh and the proxy.
	rec := httptest.NewRecorder()
	f.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	m := rec.Body.String()
	require.Contains(t, m, `potluck_agent_applied_index{role="front"} 42`)
	require.Contains(t, m, `potluck_mesh_peer_rx_bytes_total{peer="100.64.1.2"}`)
	require.Contains(t, m, `route="hello"`)
	rec = httptest.NewRecorder()
	f.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	var st struct {
		Identity agent.Identity
		Proxy    struct{ Routes []struct{ Name string } }
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &st))
	require.Equal(t, "front1", st.Identity.Name)
	require.Equal(t, "hello", st.Proxy.Routes[0].Name)
}

// A Front killed and restarted reaches its NATed Back at once: it restores
// the Back's endpoint learned by the last run instead of waiting for the
// Back's probe to notice the restart (issue 17: ~30 s outage; here the
// Back's probe is slowed to a minute, so only the restored endpoint can
// explain a quick recovery).
func TestFrontRestartReachesNATedBackAtOnce(t *testing.T) {
	fr := newSavedFront(t)
	back := startBack(t, fr, "100.64.1.2", meshnet.Config{ProbeInterval: time.Minute}, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})

	writeSavedFront(t, fr, agentproto.DesiredState{
		Index: 7,
		Peers: []agentproto.Peer{back.peer("back1")},
		Routes: []agentproto.Route{{Installation: "hello", Domain: "hello.test", Backends: []agentproto.Backend{
			{InstanceID: "i-1", Address: "100.64.1.2:5000", State: agentproto.InstanceRunning}}}},
	})

	var current *Front
	start := func() (string, func()) {
		f, addr, shutdown := runFront(t, fr)
		current = f
		return addr, func() {
			// A crash as the Back sees it: the Front's sessions vanish.
			require.NoError(t, f.Agent().Close())
			shutdown()
		}
	}
	get := func(addr string) bool {
		code, _, err := getWith(&http.Client{Timeout: 2 * time.Second}, addr)
		return err == nil && code == 200
	}

	addr, stop := start()
	require.Eventually(t, func() bool { return get(addr) }, 20*time.Second, 100*time.Millisecond)
	// The learned endpoint reaches the disk while the Front runs (not only
	// at a clean exit, which a kill -9 never has).
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(fr.dir, "endpoints.json"))
		return err == nil
	}, 15*time.Second, 100*time.Millisecond)
	stop()
	time.Sleep(2 * time.Second) // the process is down for a while

	addr, stop = start()
	defer stop()
	restarted := time.Now()
	// The Back's endpoint is configured from the saved one, before the Back
	// sent anything: the Front can open the session itself.
	var backPeer meshnet.Peer
	require.Eventually(t, func() bool {
		p, ok := current.Agent().Node().PeerByAddress(netip.MustParseAddr("100.64.1.2"))
		backPeer = p
		return ok
	}, 5*time.Second, 10*time.Millisecond)
	require.True(t, backPeer.Endpoint.IsValid(), "the Back's learned endpoint was not restored")
	require.False(t, backPeer.Hub, "a restored endpoint must not turn the Back into a hub")
	require.Eventually(t, func() bool { return get(addr) }, 3*time.Second, 50*time.Millisecond,
		"the restarted Front must reach the Back through its saved endpoint, not wait for the Back's probe")
	t.Logf("serving again %v after the restart", time.Since(restarted).Round(time.Millisecond))
}

// Issue 17: a Back that vanishes (kill -9 of the process or loss of the
// machine) must not hold requests for the 60 s read timeout: the mesh
// notices it is silent, the proxy fails its in-flight requests over, and
// idempotent ones are answered by the other instance.
func TestBackLossFailsOverInFlightRequests(t *testing.T) {
	fr := newSavedFront(t)
	// back1 holds every request (as a Back does whose machine is about to
	// vanish); back2 answers at once.
	release := make(chan struct{})
	defer close(release)
	b1 := startBack(t, fr, "100.64.1.2", meshnet.Config{}, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	b2 := startBack(t, fr, "100.64.1.3", meshnet.Config{}, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "back2") })

	writeSavedFront(t, fr, agentproto.DesiredState{
		Index: 3,
		Peers: []agentproto.Peer{b1.peer("back1"), b2.peer("back2")},
		Routes: []agentproto.Route{{Installation: "hello", Domain: "hello.test", Backends: []agentproto.Backend{
			{InstanceID: "i-1", Address: "100.64.1.2:5000", State: agentproto.InstanceRunning},
			{InstanceID: "i-2", Address: "100.64.1.3:5000", State: agentproto.InstanceRunning}}}},
	})
	_, addr, stop := runFront(t, fr)
	defer stop()
	client := &http.Client{Timeout: 20 * time.Second}
	get := func() (int, string, error) { return getWith(client, addr) }
	warm := &http.Client{Timeout: time.Second} // back1 holds what it gets
	// Both Backs must be reachable before the test starts.
	require.Eventually(t, func() bool { code, _, _ := getWith(warm, addr); return code == 200 }, 20*time.Second, 100*time.Millisecond)

	// Requests in flight, some of them to back1.
	type result struct {
		code int
		body string
		err  error
		took time.Duration
	}
	results := make(chan result, 8)
	for range 8 {
		go func() {
			start := time.Now()
			code, body, err := get()
			results <- result{code, body, err, time.Since(start)}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, b1.node.Close()) // back1's machine is gone
	lost := time.Now()
	for range 8 {
		r := <-results
		require.NoError(t, r.err)
		require.Equal(t, 200, r.code, "an idempotent request in flight to the lost Back must be answered by the other")
		require.Equal(t, "back2", r.body)
		require.Less(t, time.Since(lost), 10*time.Second, "a request waited for the read timeout")
	}
	t.Logf("every request answered %v after the Back vanished", time.Since(lost).Round(10*time.Millisecond))
}

func getWith(c *http.Client, addr string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = "hello.test"
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}
