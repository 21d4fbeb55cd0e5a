package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/blobs/blobstest"
)

func TestBadInputIsRejectedAndChangesNothing(t *testing.T) {
	c := newTestCluster(t, 1, func(_ int, cfg *Config) {
		cfg.Peers = nil
		cfg.MaxUploadBytes = 64 << 10
	})
	join := c.joinToken(0)
	revoked := c.joinToken(0)
	var tokens []struct{ ID string }
	c.call(0, "GET", "/v1/tokens", nil).json(t, &tokens)
	revokedID := strings.SplitN(revoked, ".", 2)[0]
	r := c.call(0, "DELETE", "/v1/tokens/"+revokedID, nil)
	require.Equal(t, http.StatusOK, r.code, r.String())

	backKey := randomKey(t)
	r = call(t, "POST", c.nodes[0].URL()+"/v1/hosts", join, map[string]any{"name": "back0", "role": "back", "public_key": backKey, "cpus": 1, "memory_mb": 1024, "disk_mb": 1000}, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	c.registerHost(0, join, "front0", "front", 1, 512)
	r = c.call(0, "POST", "/v1/apps", map[string]any{"name": "web", "image": "x/web:1", "container_port": 80})
	require.Equal(t, http.StatusCreated, r.code, r.String())
	r = c.call(0, "POST", "/v1/installations", map[string]any{"name": "site", "app": "web", "fronts": 1, "backs": 1, "domain": "site.example.com", "cpus": 0.25, "memory_mb": 128})
	require.Equal(t, http.StatusCreated, r.code, r.String())

	good := blobstest.DockerSaveTar(t, "web:2", 100)
	corrupt := append([]byte(nil), good[:700]...) // cut inside an entry
	oversized := blobstest.DockerSaveTar(t, "big:1", 200<<10)
	validInst := func(over map[string]any) map[string]any {
		b := map[string]any{"name": "other", "app": "web", "fronts": 1, "backs": 1, "domain": "other.example.com", "cpus": 0.1, "memory_mb": 64}
		for k, v := range over {
			b[k] = v
		}
		return b
	}

	cases := []struct {
		name    string
		method  string
		path    string
		token   string
		body    any
		code    int
		message string
	}{
		{"malformed JSON", "POST", "/v1/installations", testToken, `{"name": "x",`, 400, "malformed JSON"},
		{"not an object", "POST", "/v1/installations", testToken, `[1,2]`, 400, "malformed JSON"},
		{"two JSON values", "POST", "/v1/apps", testToken, `{"name":"a1","image":"x/y:1"} {}`, 400, "more than one JSON value"},
		{"empty body", "POST", "/v1/apps", testToken, ``, 400, "empty body"},
		{"unknown field", "POST", "/v1/installations", testToken, validInst(map[string]any{"replicas": 3}), 400, `unknown field "replicas"`},
		{"unknown app", "POST", "/v1/installations", testToken, validInst(map[string]any{"app": "nope"}), 400, `unknown app "nope"`},
		{"zero backs", "POST", "/v1/installations", testToken, validInst(map[string]any{"backs": 0}), 400, "backs must be"},
		{"negative fronts", "POST", "/v1/installations", testToken, validInst(map[string]any{"fronts": -1}), 400, "fronts must be"},
		{"bad domain", "POST", "/v1/installations", testToken, validInst(map[string]any{"domain": "Not A Domain"}), 400, "domain must be"},
		{"duplicate installation", "POST", "/v1/installations", testToken, validInst(map[string]any{"name": "site"}), 409, `installation "site" already exists`},
		{"duplicate domain", "POST", "/v1/installations", testToken, validInst(map[string]any{"domain": "site.example.com"}), 409, "already served"},
		{"not enough capacity", "POST", "/v1/installations", testToken, validInst(map[string]any{"cpus": 4}), 409, "not enough capacity"},
		{"too many backs", "POST", "/v1/installations", testToken, validInst(map[string]any{"backs": 2}), 409, "1 more needed"},
		{"too many fronts", "POST", "/v1/installations", testToken, validInst(map[string]any{"fronts": 2}), 409, "not enough fronts"},
		{"release of an unknown installation", "POST", "/v1/installations/nope/releases", testToken, map[string]any{}, 404, `no installation "nope"`},
		{"release with a bad health check", "POST", "/v1/installations/site/releases", testToken, map[string]any{"health": map[string]any{"timeout": "1h"}}, 400, "health timeout must be"},
		{"release of an unknown app version", "POST", "/v1/installations/site/releases", testToken, map[string]any{"app_version": 9}, 404, `app "web" has no version 9`},
		{"rollback with nothing to go back to", "POST", "/v1/installations/site/rollback", testToken, nil, 409, "no earlier release that served"},
		{"logs with a bad tail", "GET", "/v1/installations/site/logs?tail=-1", testToken, nil, 400, "tail must be"},
		{"bad app name", "POST", "/v1/apps", testToken, map[string]any{"name": "Web App", "image": "x/web:2"}, 400, "app name"},
		{"delete app in use", "DELETE", "/v1/apps/web", testToken, nil, 409, "used by installations [site]"},
		{"scale to zero", "POST", "/v1/installations/site/scale", testToken, map[string]any{"backs": 0}, 400, "backs must be"},
		{"scale unknown", "POST", "/v1/installations/nope/scale", testToken, map[string]any{"backs": 1}, 404, `no installation "nope"`},
		{"scale beyond capacity", "POST", "/v1/installations/site/scale", testToken, map[string]any{"backs": 3}, 409, "not enough capacity"},
		{"oversized upload", "POST", "/v1/apps/big/tarball?container_port=80", testToken, oversized, 413, "larger than the limit"},
		{"corrupt tarball", "POST", "/v1/apps/broken/tarball?container_port=80", testToken, corrupt, 400, "not a docker save tarball"},
		{"not a tar", "POST", "/v1/apps/text/tarball?container_port=80", testToken, strings.Repeat("hello world\n", 100), 400, "not a docker save tarball"},
		{"tar without manifest", "POST", "/v1/apps/nomani/tarball", testToken, tarWithout(t), 400, "no manifest.json"},
		{"oversized JSON", "POST", "/v1/apps", testToken, `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "body larger than"},
		{"no token", "GET", "/v1/apps", "", nil, 401, "missing bearer token"},
		{"wrong token", "GET", "/v1/apps", "not-the-token", nil, 401, "not valid"},
		{"join token on operator call", "GET", "/v1/apps", join, nil, 401, "operator token required"},
		{"revoked join token", "POST", "/v1/hosts", revoked, map[string]any{"name": "back9", "role": "back", "public_key": randomKey(t), "cpus": 1, "memory_mb": 1, "disk_mb": 1}, 401, "revoked"},
		{"re-register with another key", "POST", "/v1/hosts", join, map[string]any{"name": "back0", "role": "back", "public_key": randomKey(t), "cpus": 1, "memory_mb": 1024, "disk_mb": 1000}, 409, "another public key"},
		{"key reused by another name", "POST", "/v1/hosts", join, map[string]any{"name": "back7", "role": "back", "public_key": backKey, "cpus": 1, "memory_mb": 1024, "disk_mb": 1000}, 409, "already registered as host"},
		{"bad role and key", "POST", "/v1/hosts", join, map[string]any{"name": "x1", "role": "middle", "public_key": "abc", "cpus": 0, "memory_mb": 1, "disk_mb": 1}, 400, "role must be"},
		{"all-zero key", "POST", "/v1/hosts", join, map[string]any{"name": "x2", "role": "back", "public_key": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "cpus": 1, "memory_mb": 1, "disk_mb": 1}, 400, "public_key must be"},
		{"front without endpoint", "POST", "/v1/hosts", join, map[string]any{"name": "f9", "role": "front", "public_key": randomKey(t), "cpus": 1, "memory_mb": 1, "disk_mb": 1}, 400, "endpoint must be"},
		{"unknown host", "POST", "/v1/hosts/nope/decommission", testToken, nil, 404, `no host "nope"`},
		{"drain with nowhere to go", "POST", "/v1/hosts/back0/decommission", testToken, nil, 409, "cannot drain"},
		{"bad request id", "POST", "/v1/apps", testToken, map[string]any{"name": "ok1", "image": "x/y:1"}, 400, "X-Request-Id"},
		{"bad blocking index", "GET", "/v1/apps?index=abc", testToken, nil, 400, "index must be"},
		{"unknown endpoint", "GET", "/v1/nothing", testToken, nil, 404, "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := visible(t, c.nodes[0].Node.FSM.State())
			var body any = tc.body
			if s, ok := tc.body.(string); ok {
				body = []byte(s)
			}
			headers := map[string]string{}
			if tc.name == "bad request id" {
				headers["X-Request-Id"] = "bad id with spaces"
			}
			r := call(t, tc.method, c.nodes[0].URL()+tc.path, tc.token, body, headers)
			require.Equal(t, tc.code, r.code, r.String())
			var e struct{ Error string }
			require.NoError(t, json.Unmarshal(r.body, &e), r.String())
			require.Contains(t, e.Error, tc.message)
			require.Equal(t, before, visible(t, c.nodes[0].Node.FSM.State()), "state changed")
		})
	}
	// A good upload works after all that, and nothing was left behind.
	r = call(t, "POST", c.nodes[0].URL()+"/v1/apps/web2/tarball?container_port=80", testToken, good, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var app struct{ Digest, Image string }
	r.json(t, &app)
	require.Equal(t, "web:2", app.Image)
	require.True(t, c.nodes[0].Blobs.Has(app.Digest))
}

func tarWithout(t *testing.T) []byte {
	data := blobstest.DockerSaveTar(t, "x:1", 10)
	// Rename manifest.json in the header (name field is at offset 0 of each
	// 512-byte header block).
	i := bytes.Index(data, []byte("manifest.json"))
	require.Positive(t, i)
	copy(data[i:], "manifest.jsoX")
	// Fix the header checksum after the rename.
	hdr := data[i : i+512]
	for k := 148; k < 156; k++ {
		hdr[k] = ' '
	}
	sum := 0
	for _, b := range hdr {
		sum += int(b)
	}
	copy(hdr[148:], fmt.Sprintf("%06o\x00 ", sum))
	return data
}

func TestUploadToFollowerIsStoredAndReplicated(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	f := c.follower()
	tarball := blobstest.DockerSaveTar(t, "hello:1", 50<<10)
	r := call(t, "POST", c.nodes[f].URL()+"/v1/apps/hello/tarball?container_port=8080", testToken, tarball, nil)
	require.Equal(t, http.StatusCreated, r.code, r.String())
	var app struct {
		Digest string
		Size   int64
	}
	r.json(t, &app)
	require.Equal(t, int64(len(tarball)), app.Size)
	require.Eventually(t, func() bool {
		for _, n := range c.nodes {
			if !n.Blobs.Has(app.Digest) {
				return false
			}
		}
		return true
	}, 15*time.Second, 50*time.Millisecond, "blob not replicated to every core node")
	for i := range c.nodes {
		r := c.call(i, "GET", "/v1/blobs/"+app.Digest, nil)
		require.Equal(t, http.StatusOK, r.code)
		require.Equal(t, tarball, r.body)
	}
}
