package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/cluster"
	"potluck/core/fsm"
	"potluck/core/pki"
	"potluck/internal/freeport"
)

const testToken = "operator-token-for-tests-0123456789"

// testCluster runs n real core nodes in-process: raft over TCP on loopback,
// bolt stores in temp dirs, real HTTP.
type testCluster struct {
	t     *testing.T
	cfgs  []Config
	nodes []*Server
}

// reserveAddrs returns n distinct free loopback TCP addresses. Ports come
// from 20000-31999, below Linux's ephemeral range, so outgoing connections
// never take them between the reservation and the node's bind (nodes are
// restarted on the same ports); all are held until all are chosen.
func reserveAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := freeport.TCPs(n)
	require.NoError(t, err)
	return addrs
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newTestCluster(t *testing.T, n int, tweak func(i int, c *Config)) *testCluster {
	t.Helper()
	var peers []cluster.Peer
	addrs := reserveAddrs(t, 2*n)
	raftAddrs, httpAddrs := addrs[:n], addrs[n:]
	for i := range n {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("core%d", i+1), Addr: raftAddrs[i]})
	}
	c := &testCluster{t: t}
	ca, err := pki.NewCA("test")
	require.NoError(t, err)
	for i := range n {
		cfg := Config{
			NodeID: peers[i].ID, DataDir: filepath.Join(t.TempDir(), peers[i].ID), RaftBind: raftAddrs[i], Peers: peers, ClusterCA: ca,
			Timing: cluster.FastTiming, HTTPAddr: httpAddrs[i], OperatorToken: testToken,
			HeartbeatTTL: time.Hour, ReconcileInterval: 50 * time.Millisecond, DrainTime: 200 * time.Millisecond,
			Logger: quietLogger(), RaftLogOutput: io.Discard,
		}
		if tweak != nil {
			tweak(i, &cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
	}
	for i := range n {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			if c.nodes[i] != nil {
				_ = c.nodes[i].Close()
			}
		}
	})
	c.waitSettled()
	return c
}

func (c *testCluster) start(i int) {
	c.t.Helper()
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port may linger briefly after a stop
		c.nodes[i], err = Start(c.cfgs[i])
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(c.t, err)
}

func (c *testCluster) stop(i int) {
	c.t.Helper()
	require.NoError(c.t, c.nodes[i].Close())
	c.nodes[i] = nil
}

// leader waits for a running node that leads and returns its position.
func (c *testCluster) leader() int {
	c.t.Helper()
	var found int
	require.Eventually(c.t, func() bool {
		for i, n := range c.nodes {
			if n != nil && n.Node.IsLeader() {
				found = i
				return true
			}
		}
		return false
	}, 15*time.Second, 20*time.Millisecond, "no leader elected")
	return found
}

func (c *testCluster) follower() int {
	l := c.leader()
	for i, n := range c.nodes {
		if n != nil && i != l {
			return i
		}
	}
	c.t.Fatal("no follower running")
	return -1
}

// waitSettled waits until every running node knows the operator token and
// every core node's record.
func (c *testCluster) waitSettled() {
	c.t.Helper()
	c.leader()
	require.Eventually(c.t, func() bool {
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			st := n.Node.FSM.State()
			if st.OperatorTokenHash == "" || len(st.CoreNodes) < c.running() {
				return false
			}
			for _, m := range c.nodes {
				if m != nil {
					rec := st.CoreNodes[m.cfg.NodeID]
					if rec == nil || rec.APIURL != m.URL() {
						return false
					}
				}
			}
		}
		return true
	}, 15*time.Second, 20*time.Millisecond, "cluster did not settle")
}

func (c *testCluster) running() int {
	k := 0
	for _, n := range c.nodes {
		if n != nil {
			k++
		}
	}
	return k
}

// waitConverged waits until the FSM of every running node reached the
// leader's FSM index. (raft's AppliedIndex can run ahead of the FSM, which
// applies in its own goroutine, so the FSM's own index is compared.)
func (c *testCluster) waitConverged() {
	c.t.Helper()
	l := c.leader()
	want := c.nodes[l].Node.FSM.State().Index
	require.Eventually(c.t, func() bool {
		for _, n := range c.nodes {
			if n != nil && n.Node.FSM.State().Index < want {
				return false
			}
		}
		return true
	}, 15*time.Second, 20*time.Millisecond)
}

type response struct {
	code   int
	body   []byte
	header http.Header
}

func (r response) String() string { return fmt.Sprintf("HTTP %d: %s", r.code, r.body) }

func (r response) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), r.String())
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// call sends one request; transport errors give code 0.
// call sends one API request. A write sent without explicit headers behaves
// like a real client: it carries a request id and, when the core answers 503
// (leadership changed: outcome unknown), is retried with the same id, so a
// loaded test machine's elections do not fail unrelated assertions. Tests
// that study those answers pass their own headers and see every reply.
func call(t *testing.T, method, url, token string, body any, headers map[string]string) response {
	t.Helper()
	var data []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	case string:
		data = []byte(b)
	default:
		var err error
		data, err = json.Marshal(b)
		require.NoError(t, err)
	}
	retry := method != http.MethodGet && headers == nil
	if retry {
		var id [16]byte
		_, err := rand.Read(id[:])
		require.NoError(t, err)
		headers = map[string]string{"X-Request-Id": hex.EncodeToString(id[:])}
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(data)
		}
		req, err := http.NewRequest(method, url, rd)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		r := response{}
		resp, err := httpClient.Do(req)
		if err != nil {
			r = response{code: 0, body: []byte(err.Error())}
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r = response{code: resp.StatusCode, body: b, header: resp.Header}
		}
		if !retry || r.code != http.StatusServiceUnavailable || attempt == 5 {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *testCluster) call(i int, method, path string, body any) response {
	c.t.Helper()
	return call(c.t, method, c.nodes[i].URL()+path, testToken, body, nil)
}

func randomKey(t *testing.T) string {
	t.Helper()
	var b [32]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(b[:])
}

// joinToken creates a join token through node i.
func (c *testCluster) joinToken(i int) string {
	c.t.Helper()
	r := c.call(i, "POST", "/v1/tokens", map[string]any{"description": "test"})
	require.Equal(c.t, http.StatusCreated, r.code, r.String())
	var v struct{ Token string }
	r.json(c.t, &v)
	return v.Token
}

func (c *testCluster) registerHost(i int, token, name, role string, cpus float64, memMB int64) string {
	c.t.Helper()
	body := map[string]any{"name": name, "role": role, "public_key": randomKey(c.t), "cpus": cpus, "memory_mb": memMB, "disk_mb": 10000}
	if role == "front" {
		body["endpoint"] = "127.0.0.1:51999"
	}
	r := call(c.t, "POST", c.nodes[i].URL()+"/v1/hosts", token, body, nil)
	require.Equal(c.t, http.StatusCreated, r.code, r.String())
	var v struct{ Host struct{ ID string } }
	r.json(c.t, &v)
	return v.Host.ID
}

// visible returns the user-visible part of a state (no request records, no
// index) for before/after comparisons.
func visible(t *testing.T, st *fsm.State) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{
		"hosts": st.Hosts, "apps": st.Apps, "installations": st.Installations, "instances": st.Instances,
		"tokens": st.Tokens, "core": st.CoreNodes,
	})
	require.NoError(t, err)
	return string(data)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
