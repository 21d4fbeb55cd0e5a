package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/blobs/blobstest"
	"potluck/core/fsm"
	"potluck/internal/ratelimit"
)

// scopedToken creates a token with the operator and returns its secret.
func (f *fixture) scopedToken(body string) string {
	f.t.Helper()
	var v TokenView
	f.call(http.MethodPost, "/v1/tokens", body, http.StatusCreated, &v)
	require.NotEmpty(f.t, v.Token)
	return v.Token
}

func TestScopedTokens(t *testing.T) {
	f := newFixture(t)
	f.cluster() // app "web"
	f.call(http.MethodPost, "/v1/apps", `{"name":"blog","image":"registry.example/blog:1","container_port":8080}`, http.StatusCreated, nil)
	f.call(http.MethodPost, "/v1/installations", `{"name":"shop","app":"web","fronts":1,"backs":1,"domain":"shop.example"}`, http.StatusCreated, nil)
	f.call(http.MethodPost, "/v1/installations", `{"name":"news","app":"blog","fronts":1,"backs":1,"domain":"news.example"}`, http.StatusCreated, nil)

	var created TokenView
	f.call(http.MethodPost, "/v1/tokens", `{"scope":"app-owner","apps":["web"],"description":"team web"}`, http.StatusCreated, &created)
	require.Equal(t, fsm.ScopeAppOwner, created.Scope)
	require.Equal(t, []string{"web"}, created.Apps)
	owner := created.Token
	reader := f.scopedToken(`{"scope":"read-only"}`)
	newsOwner := f.scopedToken(`{"scope":"app-owner","installations":["news"]}`)

	tests := []struct {
		name   string
		req    request
		status int
	}{
		{"owner reads status", request{method: "GET", path: "/v1/status", token: owner}, 200},
		{"owner reads its app", request{method: "GET", path: "/v1/apps/web", token: owner}, 200},
		{"owner cannot see another app", request{method: "GET", path: "/v1/apps/blog", token: owner}, 403},
		{"owner reads its installation", request{method: "GET", path: "/v1/installations/shop", token: owner}, 200},
		{"owner cannot read another installation", request{method: "GET", path: "/v1/installations/news", token: owner}, 403},
		{"owner scales its installation", request{method: "POST", path: "/v1/installations/shop/scale", token: owner, body: `{"backs":2}`}, 200},
		{"owner cannot scale another", request{method: "POST", path: "/v1/installations/news/scale", token: owner, body: `{"backs":2}`}, 403},
		{"owner installs its app", request{method: "POST", path: "/v1/installations", token: owner, body: `{"name":"shop2","app":"web","fronts":1,"backs":1,"domain":"shop2.example"}`}, 201},
		{"owner cannot install another app", request{method: "POST", path: "/v1/installations", token: owner, body: `{"name":"blog2","app":"blog","fronts":1,"backs":1,"domain":"blog2.example"}`}, 403},
		{"owner cannot list hosts", request{method: "GET", path: "/v1/hosts", token: owner}, 403},
		{"owner cannot touch hosts", request{method: "POST", path: "/v1/hosts/b1/decommission", token: owner}, 403},
		{"owner cannot create tokens", request{method: "POST", path: "/v1/tokens", token: owner, body: `{}`}, 403},
		{"owner cannot list tokens", request{method: "GET", path: "/v1/tokens", token: owner}, 403},
		{"owner cannot rotate", request{method: "POST", path: "/v1/tokens/operator/rotate", token: owner}, 403},
		{"owner cannot change the cluster", request{method: "POST", path: "/v1/cluster/voters", token: owner, body: `{"id":"x","raft_address":"127.0.0.1:1"}`}, 403},
		{"owner cannot call core-internal routes", request{method: "POST", path: "/v1/internal/heartbeat", token: owner, body: `{}`}, 403},
		{"owner cannot download blobs", request{method: "GET", path: "/v1/blobs/sha256:" + strings.Repeat("0", 64), token: owner}, 403},
		{"owner cannot register hosts", request{method: "POST", path: "/v1/hosts", token: owner, body: registerBody("b9", "back", 9)}, 403},
		{"owner cannot create another app", request{method: "POST", path: "/v1/apps", token: owner, body: `{"name":"other","image":"x:1","container_port":80}`}, 403},
		{"installation owner reads its app", request{method: "GET", path: "/v1/apps/blog", token: newsOwner}, 200},
		{"installation owner cannot delete its app", request{method: "DELETE", path: "/v1/apps/blog", token: newsOwner}, 403},
		{"reader reads hosts", request{method: "GET", path: "/v1/hosts", token: reader}, 200},
		{"reader reads tokens (no secrets)", request{method: "GET", path: "/v1/tokens", token: reader}, 200},
		{"reader cannot write", request{method: "POST", path: "/v1/installations/shop/scale", token: reader, body: `{"backs":1}`}, 403},
		{"reader cannot delete", request{method: "DELETE", path: "/v1/apps/web", token: reader}, 403},
		{"reader cannot download blobs", request{method: "GET", path: "/v1/blobs/sha256:" + strings.Repeat("0", 64), token: reader}, 403},
		{"reader cannot register hosts", request{method: "POST", path: "/v1/hosts", token: reader, body: registerBody("b9", "back", 9)}, 403},
		{"owner deletes its installation", request{method: "DELETE", path: "/v1/installations/shop2", token: owner}, 204},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(tc.req)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
		})
	}

	f.drained()
	// Lists show an app owner what it owns only.
	var apps []AppView
	require.NoError(t, jsonOf(f.do(request{method: "GET", path: "/v1/apps", token: owner}), &apps))
	require.Len(t, apps, 1)
	require.Equal(t, "web", apps[0].Name)
	var insts []map[string]any
	require.NoError(t, jsonOf(f.do(request{method: "GET", path: "/v1/installations", token: owner}), &insts))
	require.Len(t, insts, 1)
	require.Equal(t, "shop", insts[0]["name"])
	var containers []map[string]any
	require.NoError(t, jsonOf(f.do(request{method: "GET", path: "/v1/containers", token: newsOwner}), &containers))
	require.Len(t, containers, 1)
	require.Equal(t, "news", containers[0]["installation"])

	// Scoped tokens are listed with their scope, and revoked like join tokens.
	var list []TokenView
	f.call("GET", "/v1/tokens", "", http.StatusOK, &list)
	scopes := map[fsm.TokenScope]int{}
	for _, tv := range list {
		scopes[tv.Scope]++
	}
	require.Equal(t, map[fsm.TokenScope]int{fsm.ScopeAppOwner: 2, fsm.ScopeReadOnly: 1, fsm.ScopeJoin: 3}, scopes)
	f.call(http.MethodDelete, "/v1/tokens/"+created.ID, "", http.StatusOK, nil)
	require.Equal(t, http.StatusUnauthorized, f.do(request{method: "GET", path: "/v1/apps/web", token: owner}).Code)
}

func jsonOf(rec *httptest.ResponseRecorder, v any) error {
	if rec.Code != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", rec.Code, rec.Body.String())
	}
	return json.Unmarshal(rec.Body.Bytes(), v)
}

// TestOperatorRegistersHost: docs say the operator may call everything;
// registering a host with it was accepted by the API and then refused by
// the FSM ("join token is not valid").
func TestOperatorRegistersHost(t *testing.T) {
	f := newFixture(t)
	rec := f.do(request{method: "POST", path: "/v1/hosts", token: operatorToken, body: registerBody("b1", "back", 1)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	require.Equal(t, fsm.OperatorTokenID, f.node.State().HostByName("b1").TokenID)
}

func TestRotateOperatorToken(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.NodeToken = "node.secret-for-tests" })
	var rot RotationView
	f.call(http.MethodPost, "/v1/tokens/operator/rotate", `{"grace":"10m"}`, http.StatusOK, &rot)
	require.NotEmpty(t, rot.Token)
	require.Equal(t, f.clock.Now().Add(10*time.Minute), *rot.PreviousUntil)

	get := func(tok string) int { return f.do(request{method: "GET", path: "/v1/hosts", token: tok}).Code }
	require.Equal(t, http.StatusOK, get(rot.Token), "the new token works at once")
	require.Equal(t, http.StatusOK, get(operatorToken), "the old one during the grace")
	require.Equal(t, http.StatusOK, get("node.secret-for-tests"))
	f.clock.Advance(10 * time.Minute)
	require.Equal(t, http.StatusUnauthorized, get(operatorToken), "the old one no longer after it")
	require.Equal(t, http.StatusOK, get(rot.Token))
	require.Equal(t, http.StatusOK, get("node.secret-for-tests"), "core nodes do not depend on the operator token")

	// Default grace: an hour; without a body.
	rec := f.do(request{method: "POST", path: "/v1/tokens/operator/rotate", token: rot.Token})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, f.clock.Now().Add(DefaultRotationGrace), *decodeAs[RotationView](t, rec).PreviousUntil)
}

func TestFailedTokensRateLimited(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.FailedAuth = ratelimit.Config{Rate: 0.1, Burst: 3} })
	join := f.joinToken(`{}`)
	from := func(addr, tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/v1/hosts", strings.NewReader(registerBody("b1", "back", 1)))
		r.RemoteAddr = addr
		r.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		f.api.ServeHTTP(rec, r)
		return rec
	}
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, from("192.0.2.1:1000", "ffffffff.guess").Code)
	}
	rec := from("192.0.2.1:1001", join.Token)
	require.Equal(t, http.StatusTooManyRequests, rec.Code, "even a valid token: a guesser learns nothing while limited")
	require.Equal(t, "10", rec.Header().Get("Retry-After"))
	require.Equal(t, http.StatusCreated, from("192.0.2.2:1000", join.Token).Code, "other addresses are not limited")
	f.clock.Advance(10 * time.Second)
	require.Equal(t, http.StatusOK, from("192.0.2.1:1000", join.Token).Code, "one failure regained: the agent's own registration again")
}

func TestUploadRefusesDecompressionBomb(t *testing.T) {
	f := newFixture(t)
	f.blobs.MaxUncompressed = 1 << 20
	bomb := blobstest.Archive(t, blobstest.Image{RepoTags: []string{"bomb:1"}, Layers: [][]byte{blobstest.GzipLayer(t, 4<<20)}})
	rec := f.do(request{method: "POST", path: "/v1/apps/bomb/tarball?container_port=80", token: operatorToken, body: string(bomb)})
	require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code, rec.Body.String())
	require.Contains(t, errorOf(t, rec), "unpack")

	// What an accepted image unpacks to is kept, and counts as its disk.
	small := blobstest.Archive(t, blobstest.Image{RepoTags: []string{"small:1"}, Layers: [][]byte{blobstest.GzipLayer(t, 512<<10)}})
	rec = f.do(request{method: "POST", path: "/v1/apps/small/tarball?container_port=80", token: operatorToken, body: string(small)})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	app := decodeAs[AppView](t, rec)
	require.Greater(t, app.UncompressedSize, int64(512<<10))
	require.Less(t, app.UncompressedSize, int64(1<<20))
}

// TestBodyDeadline: a client that announces a body and never sends it is
// answered (without a token: at once) or cut off within the body timeout,
// instead of holding the connection for ever.
func TestBodyDeadline(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.BodyIdleTimeout = 300 * time.Millisecond })
	srv := httptest.NewServer(f.api)
	t.Cleanup(srv.Close)
	tests := []struct {
		name, head string
		status     string
		within     time.Duration
	}{
		{"no token: answered at once", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "401", 200 * time.Millisecond},
		{"unknown token: answered at once", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nContent-Length: 10\r\n\r\n", "401", 200 * time.Millisecond},
		{"oversized: answered at once", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + operatorToken + "\r\nContent-Length: 99999999\r\n\r\n", "413", 200 * time.Millisecond},
		{"valid token: cut after the body timeout", "POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + operatorToken + "\r\nContent-Length: 10\r\n\r\n", "400", 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			require.NoError(t, err)
			defer conn.Close()
			_, err = conn.Write([]byte(tc.head))
			require.NoError(t, err)
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(tc.within)))
			line, err := bufio.NewReader(conn).ReadString('\n')
			require.NoError(t, err, "no answer within %s", tc.within)
			require.Contains(t, line, " "+tc.status+" ")
		})
	}
}

// TestRegistrationKeepsMeasured: what the agent measured is stored on the
// host and caps what the scheduler may place there.
func TestRegistrationKeepsMeasured(t *testing.T) {
	f := newFixture(t)
	tok := f.joinToken(`{}`)
	body := `{"name":"b1","role":"back","public_key":"` + testKey(1) + `","cpus":4,"memory_mb":4096,"disk_mb":10000,"measured":{"cpus":8,"memory_mb":4096,"disk_mb":20000,"arch":"arm64","storage":"ssd"}}`
	rec := f.do(request{method: "POST", path: "/v1/hosts", token: tok.Token, body: body})
	require.Equal(t, http.StatusCreated, rec.Code, rec.Body.String())
	var h HostView
	f.call("GET", "/v1/hosts/b1", "", http.StatusOK, &h)
	require.Equal(t, &fsm.Resources{MilliCPU: 8000, MemoryMB: 4096, DiskMB: 20000}, h.Measured)
	require.Equal(t, "arm64", h.Arch, "the measured architecture is the feature --requires arch= matches")
	require.Equal(t, "ssd", h.Storage)
	require.Equal(t, fsm.Resources{MilliCPU: 4000, MemoryMB: 4096, DiskMB: 10000}, h.Free, "free: the smaller of declared and measured")

	// A host whose agent measured less than it declared earlier (an older
	// registration, edited state) is placed by the measurement.
	st := f.node.State().Clone()
	st.Hosts[h.ID].Measured = &fsm.Resources{MilliCPU: 1000, MemoryMB: 1024, DiskMB: 500}
	require.Equal(t, fsm.Resources{MilliCPU: 1000, MemoryMB: 1024, DiskMB: 500}, hostView(st, st.Hosts[h.ID]).Free)
}

// TestRegistrationRefusesOddFeatures: measured features are short names,
// never free text that would end up in tables and placement constraints.
func TestRegistrationRefusesOddFeatures(t *testing.T) {
	f := newFixture(t)
	tok := f.joinToken(`{}`)
	for i, measured := range []string{`"arch":"AMD64"`, `"storage":"ssd; drop"`, `"arch":"` + strings.Repeat("a", 17) + `"`} {
		body := fmt.Sprintf(`{"name":"b%d","role":"back","public_key":"%s","cpus":1,"memory_mb":64,"disk_mb":100,"measured":{"cpus":1,"memory_mb":64,"disk_mb":100,%s}}`, i, testKey(byte(10+i)), measured)
		rec := f.do(request{method: "POST", path: "/v1/hosts", token: tok.Token, body: body})
		require.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
		require.Contains(t, rec.Body.String(), "measured arch and storage must be short lower-case names")
	}
}

// TestClientAddrOfForwardedRequests: failed tokens count against the client
// address a forwarding core node names only when its node token vouches
// for it; otherwise against the address the request came from.
func TestClientAddrOfForwardedRequests(t *testing.T) {
	const nodeToken = "node.secret-for-tests"
	tests := []struct {
		name   string
		config string // the receiving node's node token
		header map[string]string
		want   string
	}{
		{"vouched for", nodeToken, map[string]string{HeaderClientAddr: "198.51.100.7", HeaderNodeAuth: nodeToken}, "198.51.100.7"},
		{"wrong node token", nodeToken, map[string]string{HeaderClientAddr: "198.51.100.7", HeaderNodeAuth: "node.guess"}, "192.0.2.1"},
		{"no node token sent", nodeToken, map[string]string{HeaderClientAddr: "198.51.100.7"}, "192.0.2.1"},
		{"this node has no node token", "", map[string]string{HeaderClientAddr: "198.51.100.7", HeaderNodeAuth: ""}, "192.0.2.1"},
		{"not forwarded", nodeToken, nil, "192.0.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.NodeToken = tc.config })
			r := httptest.NewRequest("GET", "/v1/hosts", nil)
			r.RemoteAddr = "192.0.2.1:1000"
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			require.Equal(t, tc.want, f.api.clientAddr(r))
		})
	}
}
