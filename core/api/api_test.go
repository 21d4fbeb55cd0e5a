package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/blobs"
	"potluck/core/fsm"
	"potluck/internal/fakeclock"
	"potluck/internal/jsonhttp"
)

const operatorToken = "operator-token-for-tests-0123456789"

// fixture is one API server on a node in memory that leads by default.
type fixture struct {
	t     *testing.T
	node  *memNode
	api   *Server
	blobs *blobs.Store
	clock *fakeclock.Clock
}

func newFixture(t *testing.T, tweak ...func(*Config)) *fixture {
	t.Helper()
	clk := newClock()
	node := newMemNode("core1", clk.Now)
	node.must(t, &fsm.Command{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: HashToken(operatorToken)})
	store, err := blobs.Open(t.TempDir())
	require.NoError(t, err)
	cfg := Config{
		Node: node, Blobs: store, Logger: slog.New(slog.DiscardHandler), ReadyOnRegister: true, AgentPort: 7400, Now: clk.Now,
		LeaderHold: 100 * time.Millisecond, // tests without a leader give up quickly
	}
	for _, f := range tweak {
		f(&cfg)
	}
	return &fixture{t: t, node: node, api: New(cfg), blobs: store, clock: clk}
}

// request is one call to the API.
type request struct {
	method, path string
	token        string // "" sends none
	body         string
	header       map[string]string
}

func (f *fixture) do(req request) *httptest.ResponseRecorder {
	f.t.Helper()
	var body io.Reader = http.NoBody
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r := httptest.NewRequest(req.method, req.path, body)
	if req.token != "" {
		r.Header.Set("Authorization", "Bearer "+req.token)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, r)
	return rec
}

// call sends an operator request and requires status want; it decodes a
// JSON answer into out when out is not nil.
func (f *fixture) call(method, path, body string, want int, out any) *httptest.ResponseRecorder {
	f.t.Helper()
	rec := f.do(request{method: method, path: path, token: operatorToken, body: body})
	require.Equal(f.t, want, rec.Code, "%s %s: %s", method, path, rec.Body.String())
	if out != nil {
		require.NoError(f.t, json.Unmarshal(rec.Body.Bytes(), out))
	}
	return rec
}

// errorOf is the "error" of an answer.
func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e jsonhttp.ErrorBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &e), rec.Body.String())
	return e.Error
}

// joinToken creates a join token through the API and returns its secret.
func (f *fixture) joinToken(body string) TokenView {
	f.t.Helper()
	var v TokenView
	f.call(http.MethodPost, "/v1/tokens", body, http.StatusCreated, &v)
	require.NotEmpty(f.t, v.Token)
	return v
}

// testKey is a WireGuard public key made of one repeated byte.
func testKey(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

func registerBody(name, role string, key byte) string {
	endpoint := ""
	if role == "front" {
		endpoint = fmt.Sprintf(`,"endpoint":"203.0.113.%d:51820"`, key)
	}
	return fmt.Sprintf(`{"name":%q,"role":%q,"public_key":%q,"cpus":4,"memory_mb":4096,"disk_mb":10000%s}`, name, role, testKey(key), endpoint)
}

// register registers a host with a fresh join token, as agents do, and
// returns its registration.
func (f *fixture) register(name, role string, key byte) RegistrationView {
	f.t.Helper()
	tok := f.joinToken(`{}`)
	rec := f.do(request{method: http.MethodPost, path: "/v1/hosts", token: tok.Token, body: registerBody(name, role, key)})
	require.Equal(f.t, http.StatusCreated, rec.Code, rec.Body.String())
	var v RegistrationView
	require.NoError(f.t, json.Unmarshal(rec.Body.Bytes(), &v))
	return v
}

// cluster gives the fixture one Front, two Backs and an image app "web".
func (f *fixture) cluster() {
	f.t.Helper()
	f.register("f1", "front", 1)
	f.register("b1", "back", 2)
	f.register("b2", "back", 3)
	f.call(http.MethodPost, "/v1/apps", `{"name":"web","image":"registry.example/web:1","container_port":8080}`, http.StatusCreated, nil)
}

func TestCorePeersListsMeshReadyCoreNodes(t *testing.T) {
	f := newFixture(t)
	f.node.must(t, &fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{ID: "core1", APIURL: "http://127.0.0.1:8400"}})
	f.node.must(t, &fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{
		ID: "core2", APIURL: "http://127.0.0.1:8410", PublicKey: testKey(9), MeshEndpoint: "127.0.0.1:51820",
		TunnelAddr: netip.MustParseAddr("100.64.0.2"), AgentPort: 7400,
	}})
	peers := CorePeers(f.node.State())
	require.Len(t, peers, 1, "a core node without a mesh key is not a peer")
	require.Equal(t, "core2", peers[0].ID)
	require.Equal(t, "http://100.64.0.2:7400", peers[0].AgentURL)
}

// drained does what the leader's reconciler does once a deleting
// installation's instances have drained: deletes it.
func (f *fixture) drained() {
	f.t.Helper()
	for _, inst := range f.node.State().SortedInstallations() {
		if inst.Deleting {
			f.node.mu.Lock()
			res := f.node.applyLocked(&fsm.Command{Type: fsm.CmdDeleteInstallation, Name: inst.Name})
			f.node.mu.Unlock()
			require.NoError(f.t, res.Err)
		}
	}
}
