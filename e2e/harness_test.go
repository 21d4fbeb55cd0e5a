package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/back"
	"potluck/back/engine"
	"potluck/core/cluster"
	"potluck/core/server"
	"potluck/front"
	"potluck/internal/agent"
	"potluck/meshnet"
)

const operatorToken = "e2e-operator-token-0123456789abcdef"

// system is a whole Potluck on loopback: core nodes, Fronts and Backs, all
// real (raft over TCP, WireGuard over UDP, containers in Docker).
type system struct {
	t         *testing.T
	loopback  byte // third octet of this run's Backs' publish addresses
	coreCfgs  []server.Config
	cores     []*server.Server
	joinToken string
	front     *front.Front
	frontAddr string
	backs     []*backHost
}

type backHost struct {
	cfg    back.Config
	b      *back.Back
	cancel context.CancelFunc
	done   chan struct{}
}

func logger(t *testing.T, name string) *slog.Logger {
	if os.Getenv("E2E_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
	}
	return slog.New(slog.DiscardHandler)
}

func freeTCP(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func freeUDP(t *testing.T) uint16 {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

func newSystem(t *testing.T, cores int, ttl time.Duration) *system {
	// Each run publishes on its own 127.0.N.0/24 so an earlier run that was
	// killed before cleaning up cannot hold its ports.
	s := &system{t: t, loopback: byte(1 + time.Now().UnixNano()%250)}
	var peers []cluster.Peer
	for i := range cores {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("core%d", i+1), Addr: freeTCP(t)})
	}
	for i := range cores {
		key, err := meshnet.GeneratePrivateKey()
		require.NoError(t, err)
		s.coreCfgs = append(s.coreCfgs, server.Config{
			NodeID: peers[i].ID, DataDir: filepath.Join(t.TempDir(), peers[i].ID), RaftBind: peers[i].Addr, Peers: peers,
			Timing: cluster.FastTiming, HTTPAddr: freeTCP(t), OperatorToken: operatorToken,
			HeartbeatTTL: ttl, ReconcileInterval: 200 * time.Millisecond,
			Mesh:   &server.MeshConfig{PrivateKey: &key, ListenPort: freeUDP(t)},
			Logger: logger(t, peers[i].ID), RaftLogOutput: io.Discard,
		})
		s.cores = append(s.cores, nil)
	}
	for i := range cores {
		s.startCore(i)
	}
	t.Cleanup(func() {
		for _, c := range s.cores {
			if c != nil {
				c.Close()
			}
		}
	})
	require.Eventually(t, func() bool {
		var st struct{ Leader string }
		return s.api(http.MethodGet, "/v1/status", nil, &st) == 200 && st.Leader != ""
	}, 20*time.Second, 100*time.Millisecond, "no core leader")

	var tok struct{ Token string }
	require.Equal(t, 201, s.api(http.MethodPost, "/v1/tokens", map[string]string{"description": "e2e"}, &tok))
	s.joinToken = tok.Token
	return s
}

func (s *system) startCore(i int) {
	srv, err := server.Start(s.coreCfgs[i])
	require.NoError(s.t, err)
	s.cores[i] = srv
}

func (s *system) coreURLs() []string {
	var urls []string
	for _, c := range s.coreCfgs {
		urls = append(urls, "http://"+c.HTTPAddr)
	}
	return urls
}

// api calls the public API on the first core node that answers.
func (s *system) api(method, path string, body, out any) int {
	var rd []byte
	if body != nil {
		var err error
		rd, err = json.Marshal(body)
		require.NoError(s.t, err)
	}
	for i, url := range s.coreURLs() {
		if s.cores[i] == nil {
			continue
		}
		req, err := http.NewRequest(method, url+path, bytes.NewReader(rd))
		require.NoError(s.t, err)
		req.Header.Set("Authorization", "Bearer "+operatorToken)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			continue
		}
		if out != nil && resp.StatusCode < 300 {
			require.NoError(s.t, json.Unmarshal(b, out), "%s %s: %s", method, path, b)
		}
		if resp.StatusCode >= 300 {
			s.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	return 0
}

func (s *system) agentConfig(name, role string, dir string) agent.Config {
	return agent.Config{
		CoreURLs: s.coreURLs(), JoinToken: s.joinToken, Name: name, Role: role,
		CPUs: 2, MemoryMB: 1024, DiskMB: 4096, DataDir: dir, PollWait: 10 * time.Second,
	}
}

func (s *system) startFront() {
	port := freeUDP(s.t)
	cfg := s.agentConfig("front1", "front", filepath.Join(s.t.TempDir(), "front1"))
	cfg.MeshPort, cfg.Endpoint = port, fmt.Sprintf("127.0.0.1:%d", port)
	f, err := front.Start(context.Background(), front.Config{Agent: cfg, Heartbeat: time.Second, Logger: logger(s.t, "front1")})
	require.NoError(s.t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(s.t, err)
	go f.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	s.t.Cleanup(func() {
		cancel()
		<-done
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		f.Shutdown(sctx)
	})
	s.front, s.frontAddr = f, ln.Addr().String()
}

func (s *system) startBack(i int, dir string) *backHost {
	name := fmt.Sprintf("back%d", i+1)
	cfg := back.Config{
		Agent:     s.agentConfig(name, "back", dir),
		PublishIP: netip.AddrFrom4([4]byte{127, 0, s.loopback, byte(11 + i)}),
		Heartbeat: time.Second, Resync: time.Second, Logger: logger(s.t, name),
	}
	b, err := back.Start(context.Background(), cfg)
	require.NoError(s.t, err)
	s.t.Cleanup(func() { removeContainers(s.t, b.Agent().Identity().HostID) })
	ctx, cancel := context.WithCancel(context.Background())
	h := &backHost{cfg: cfg, b: b, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(h.done); b.Run(ctx) }()
	s.t.Cleanup(h.stop)
	return h
}

// stop ends the agent; its containers keep running, as after a crash.
func (h *backHost) stop() {
	h.cancel()
	<-h.done
	h.b.Close()
}

// get sends one request through the Front with the app's Host header.
func (s *system) get(host string) (int, string, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.frontAddr+"/", nil)
	req.Host = host
	resp, err := frontClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Instance"), string(b), err
}

var frontClient = &http.Client{Timeout: 10 * time.Second}

// loadLoop sends sequential GETs through the Front until stopped and counts
// the failed ones; bounded by maxRequests.
type loadLoop struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok, fail int
	failures []string
}

func (s *system) startLoad(host string, maxRequests int) *loadLoop {
	l := &loadLoop{stop: make(chan struct{})}
	l.wg.Go(func() {
		for range maxRequests {
			select {
			case <-l.stop:
				return
			default:
			}
			code, _, body, err := s.get(host)
			l.mu.Lock()
			if err != nil || code != 200 {
				l.fail++
				if len(l.failures) < 5 {
					l.failures = append(l.failures, fmt.Sprintf("%d %v %s", code, err, strings.TrimSpace(body)))
				}
			} else {
				l.ok++
			}
			l.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	})
	return l
}

func (l *loadLoop) finish() (ok, fail int, failures []string) {
	close(l.stop)
	l.wg.Wait()
	return l.ok, l.fail, l.failures
}

// removeContainers removes a host's containers from the shared engine.
func removeContainers(t *testing.T, hostID string) {
	eng, err := engine.Connect(context.Background(), "", nil)
	if err != nil {
		t.Logf("cleanup: %v", err)
		return
	}
	defer eng.Close()
	cs, _ := eng.List(context.Background(), hostID)
	for _, c := range cs {
		eng.Remove(context.Background(), c.ID, 0)
	}
}
