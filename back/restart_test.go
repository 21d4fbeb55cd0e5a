package back

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agent"
	"potluck/agentproto"
	"potluck/back/engine"
	"potluck/bench/appimage"
	"potluck/meshnet"
)

func writeJSONFile(t *testing.T, path string, v any) {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// A Back restarted while no core node answers adopts the container its last
// run started (no duplicate, no removal) and keeps exposing it to its Front.
func TestBackRestartedWithoutCoreKeepsAndAdoptsItsContainer(t *testing.T) {
	ctx := context.Background()
	eng := connectEngine(t)
	loadSample(t, eng)

	hostID := fmt.Sprintf("h-restart-%d", time.Now().UnixNano())
	instance := fmt.Sprintf("i-restart-%d", time.Now().UnixNano())
	publish := netip.AddrFrom4([4]byte{127, 0, byte(1 + time.Now().UnixNano()%250), 50})
	const port = 5050
	// The previous run's container.
	before, err := eng.Run(ctx, engine.Spec{Host: hostID, Installation: "hello", Instance: instance, App: "hello",
		Image: appimage.DefaultTag, HostIP: publish, HostPort: port, ContainerPort: 8080})
	require.NoError(t, err)
	t.Cleanup(func() { eng.Remove(context.Background(), before.ID, 0) })

	// The Front, a hub the Back initiates to.
	frontKey, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	frontNode, err := meshnet.New(meshnet.Config{PrivateKey: frontKey, Address: netip.MustParseAddr("100.64.1.1")})
	require.NoError(t, err)
	defer frontNode.Close()

	dir := t.TempDir()
	backKey, err := meshnet.LoadOrCreatePrivateKey(filepath.Join(dir, "wg.key"))
	require.NoError(t, err)
	require.NoError(t, frontNode.UpsertPeer(meshnet.Peer{PublicKey: backKey.Public(), Address: netip.MustParseAddr("100.64.1.2")}))
	coreKey, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	writeJSONFile(t, filepath.Join(dir, "identity.json"), agent.Identity{
		HostID: hostID, Name: "back1", Role: "back", TunnelAddr: netip.MustParseAddr("100.64.1.2"),
		CorePeers: []agentproto.CorePeer{{ID: "core1", PublicKey: coreKey.Public().String(), Endpoint: "127.0.0.1:9", TunnelAddr: "100.64.0.1", AgentURL: "http://100.64.0.1:7400"}},
	})
	writeJSONFile(t, filepath.Join(dir, "desired.json"), agentproto.DesiredState{
		Index: 7,
		Peers: []agentproto.Peer{{Name: "front1", Role: "front", PublicKey: frontKey.Public().String(), TunnelAddr: "100.64.1.1",
			Endpoint: fmt.Sprintf("127.0.0.1:%d", frontNode.ListenPort()), Hub: true}},
		Instances: []agentproto.Instance{{ID: instance, Installation: "hello", App: "hello", Image: appimage.DefaultTag,
			Port: port, ContainerPort: 8080, AllowedFrom: []string{"100.64.1.1"}}},
	})

	b, err := Start(ctx, Config{
		Agent:     agent.Config{CoreURLs: []string{"http://127.0.0.1:1"}, Name: "back1", CPUs: 1, MemoryMB: 512, DiskMB: 1024, DataDir: dir},
		PublishIP: publish, Resync: 500 * time.Millisecond,
	})
	require.NoError(t, err)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.Run(runCtx) }()
	defer func() { cancel(); <-done; b.Close() }()

	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: frontNode.DialContext}}
	var body string
	require.Eventually(t, func() bool {
		resp, err := client.Get(fmt.Sprintf("http://100.64.1.2:%d/", port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		body = string(raw)
		return resp.StatusCode == 200
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, "Hello from "+instance+"\n", body)

	time.Sleep(time.Second) // a few resyncs
	after, err := eng.List(ctx, hostID)
	require.NoError(t, err)
	require.Len(t, after, 1, "no duplicate")
	require.Equal(t, before.ID, after[0].ID, "the same container was adopted")
	require.True(t, after[0].Running())
}
