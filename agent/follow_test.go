package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/meshnet"
)

// meshCore is a core node as an agent sees it: a real mesh node serving the
// agent API on its tunnel address, with a fixed desired state.
type meshCore struct {
	node   *meshnet.Node
	peer   agentproto.CorePeer
	index  uint64
	gets   atomic.Int32 // state queries received
	mux    *http.ServeMux
	srv    *http.Server
	closed chan struct{}
}

func newMeshCore(t *testing.T, id string, addr netip.Addr, index uint64) *meshCore {
	key, err := meshnet.GeneratePrivateKey()
	require.NoError(t, err)
	node, err := meshnet.New(meshnet.Config{PrivateKey: key, Address: addr})
	require.NoError(t, err)
	c := &meshCore{node: node, index: index, closed: make(chan struct{}), peer: agentproto.CorePeer{
		ID: id, PublicKey: key.Public().String(), TunnelAddr: addr.String(),
		Endpoint: fmt.Sprintf("127.0.0.1:%d", node.ListenPort()), AgentURL: fmt.Sprintf("http://%s:7400", addr),
	}}
	mux := http.NewServeMux()
	c.mux = mux
	mux.HandleFunc("GET "+agentproto.PathState, func(w http.ResponseWriter, r *http.Request) {
		if c.gets.Add(1) > 1 && r.URL.Query().Get("index") == fmt.Sprint(c.index) {
			// A blocking query with nothing new: hold it, as a core does.
			select {
			case <-r.Context().Done():
			case <-c.closed:
			}
			return
		}
		d := agentproto.Empty()
		d.Index = c.index
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d)
	})
	mux.HandleFunc("POST "+agentproto.PathHeartbeat, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ln, err := node.Listen(7400)
	require.NoError(t, err)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go c.srv.Serve(ln)
	t.Cleanup(c.die)
	return c
}

// die stops the node as a lost machine does: no FIN, no reset, silence.
func (c *meshCore) die() {
	select {
	case <-c.closed:
		return
	default:
	}
	close(c.closed)
	c.node.Close()
	c.srv.Close()
}

// TestFollowLeavesADeadCoreNodeWithoutWaitingOutThePoll: an agent holding a
// blocking query on a core node that dies moves to the next node once its
// heartbeats find the node gone, not after PollWait+15 s on a silent tunnel
// (the Front kept an old route for over 10 s after a core restart).
func TestFollowLeavesADeadCoreNodeWithoutWaitingOutThePoll(t *testing.T) {
	core1 := newMeshCore(t, "core1", netip.MustParseAddr("100.64.0.1"), 1)
	core2 := newMeshCore(t, "core2", netip.MustParseAddr("100.64.0.2"), 2)
	a := startMeshAgent(t, Config{PollWait: time.Minute}, core1, core2)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	var applied atomic.Uint64
	wg.Go(func() {
		a.Follow(ctx, func(_ context.Context, d *agentproto.DesiredState) error {
			applied.Store(d.Index)
			return nil
		})
	})
	wg.Go(func() { a.Heartbeats(ctx, 200*time.Millisecond, nil) })

	require.Eventually(t, func() bool { return applied.Load() == 1 && core1.gets.Load() >= 2 },
		10*time.Second, 20*time.Millisecond, "the agent never held a blocking query on core1")
	core1.die()
	require.Eventually(t, func() bool { return applied.Load() == 2 }, 10*time.Second, 50*time.Millisecond,
		"the agent still waits on the dead core node (poll wait 1 min)")
}

// startMeshAgent registers a Back with the mesh cores (through a plain
// HTTP registration endpoint that adds it to their peers) and starts its
// agent with cfg's tuning.
func startMeshAgent(t *testing.T, cfg Config, cores ...*meshCore) *Agent {
	register := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req agentproto.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		key, err := meshnet.ParsePublicKey(req.PublicKey)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		host := meshnet.Peer{PublicKey: key, Address: netip.MustParseAddr("100.64.1.9")}
		peers := make([]agentproto.CorePeer, 0, len(cores))
		for _, c := range cores {
			if err := c.node.SetPeers([]meshnet.Peer{host}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			peers = append(peers, c.peer)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(agentproto.Registration{
			Host: agentproto.Host{ID: "h-1", Name: "back1"}, TunnelAddr: "100.64.1.9", CorePeers: peers,
		})
	}))
	t.Cleanup(register.Close)
	cfg.CoreURLs, cfg.Name, cfg.Role = []string{register.URL}, "back1", agentproto.RoleBack
	cfg.CPUs, cfg.MemoryMB, cfg.DiskMB, cfg.DataDir = 1, 512, 1024, t.TempDir()
	a, err := Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { a.Close() })
	return a
}
