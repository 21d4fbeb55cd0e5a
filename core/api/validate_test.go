package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
)

func installationBody(extra string) string {
	return `{"name":"shop","app":"web","fronts":1,"backs":1,"domain":"shop.example.com"` + extra + `}`
}

func TestValidationErrors(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBodyBytes = 8 << 10 })
	f.cluster()
	f.call(http.MethodPost, "/v1/installations", installationBody(""), http.StatusCreated, nil)
	join := f.joinToken(`{}`)
	f.node.must(t, &fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{ID: "core1", APIURL: "http://127.0.0.1:8400", PublicKey: testKey(7)}})

	env := func(n int) string {
		var kv []string
		for i := range n {
			kv = append(kv, fmt.Sprintf(`"K%d":"v"`, i))
		}
		return `,"env":{` + strings.Join(kv, ",") + `}`
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		status int
		error  string // the whole message, or a prefix ending in "..."
	}{
		// every JSON body
		{"empty body", "POST", "/v1/tokens", "", 400, "empty body: send a JSON object"},
		{"unknown field", "POST", "/v1/tokens", `{"descripton":"typo"}`, 400, `malformed JSON body: json: unknown field "descripton"`},
		{"two JSON values", "POST", "/v1/tokens", `{} {}`, 400, "malformed JSON body: more than one JSON value"},
		{"not an object", "POST", "/v1/installations", `[1,2]`, 400, "malformed JSON body: json: cannot unmarshal array..."},
		{"body over the limit", "POST", "/v1/tokens", `{"description":"` + strings.Repeat("a", 9<<10) + `"}`, 413, "body larger than 8192 bytes"},
		{"no such endpoint", "GET", "/v1/nothing", "", 404, "no such endpoint: GET /v1/nothing (see docs/api.md)"},
		{"wrong method", "PUT", "/v1/hosts", "", 404, "no such endpoint: PUT /v1/hosts (see docs/api.md)"},

		// tokens
		{"token description too long", "POST", "/v1/tokens", `{"description":"` + strings.Repeat("d", MaxTokenDescription+1) + `"}`, 400, "description longer than 256 characters"},
		{"token ttl not a duration", "POST", "/v1/tokens", `{"ttl":"tomorrow"}`, 400, "ttl must be a positive duration such as 24h"},
		{"token ttl negative", "POST", "/v1/tokens", `{"ttl":"-1h"}`, 400, "ttl must be a positive duration such as 24h"},
		{"token description with a terminal escape", "POST", "/v1/tokens", `{"description":"lender \u001b[2J"}`, 400, "description must not contain control characters (found U+001B)"},
		{"token description with a newline", "POST", "/v1/tokens", `{"description":"a\nb"}`, 400, "description must not contain control characters (found U+000A)"},
		{"token scope", "POST", "/v1/tokens", `{"scope":"admin"}`, 400, `scope must be "join", "app-owner" or "read-only"`},
		{"app-owner token of nothing", "POST", "/v1/tokens", `{"scope":"app-owner"}`, 400, "an app-owner token names at least one app or installation (apps, installations)"},
		{"app-owner token app name", "POST", "/v1/tokens", `{"scope":"app-owner","apps":["Web"]}`, 400, `app name "Web": use 1-63...`},
		{"join token with apps", "POST", "/v1/tokens", `{"apps":["web"]}`, 400, "apps and installations belong to app-owner tokens (scope app-owner)"},
		{"read-only token with apps", "POST", "/v1/tokens", `{"scope":"read-only","installations":["shop"]}`, 400, "a read-only token reads everything: it names no apps or installations"},
		{"rotation grace", "POST", "/v1/tokens/operator/rotate", `{"grace":"-1h"}`, 400, "grace must be a duration between 0s and 720h0m0s, such as 1h"},
		{"revoke unknown token", "DELETE", "/v1/tokens/nope", "", 404, "..."},

		// hosts
		{"host: every problem at once", "POST", "/v1/hosts", `{"name":"B1","role":"lender","public_key":"xyz","cpus":0,"memory_mb":0,"disk_mb":-1}`, 400,
			`host name "B1": use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit; role must be "front" or "back"; ` +
				"public_key must be a base64 WireGuard public key (32 bytes); cpus must be between 0 and 1024 (e.g. 2 or 0.5); memory_mb must be positive; disk_mb must be positive"},
		{"host cpus above the limit", "POST", "/v1/hosts", `{"name":"b9","role":"back","public_key":"` + testKey(9) + `","cpus":1025,"memory_mb":1,"disk_mb":1}`, 400, "cpus must be between 0 and 1024 (e.g. 2 or 0.5)"},
		{"host memory above the limit", "POST", "/v1/hosts", fmt.Sprintf(`{"name":"b9","role":"back","public_key":%q,"cpus":1,"memory_mb":%d,"disk_mb":1}`, testKey(9), MaxHostMemoryMB+1), 400, "memory_mb must be positive"},
		{"front without endpoint", "POST", "/v1/hosts", `{"name":"f9","role":"front","public_key":"` + testKey(9) + `","cpus":1,"memory_mb":1,"disk_mb":1}`, 400, "endpoint must be the Front's public host:port for WireGuard (UDP)"},
		{"host name taken by another key", "POST", "/v1/hosts", registerBody("b1", "back", 9), 409, `host name "b1" is already registered with another public key; pick another name or decommission the old host`},
		{"host key taken by another name", "POST", "/v1/hosts", registerBody("b9", "back", 2), 409, `this public key is already registered as host "b1"; generate a new key pair`},
		{"same key and name, another role", "POST", "/v1/hosts", registerBody("b1", "front", 2), 409, `host "b1" is registered as a back; its role cannot change by registering again: decommission it and register a new host`},
		{"a core node's key", "POST", "/v1/hosts", registerBody("b8", "back", 7), 409, "this public key is core node core1's; every mesh member needs its own key pair"},
		{"declared above measured", "POST", "/v1/hosts", `{"name":"b9","role":"back","public_key":"` + testKey(9) + `","cpus":1024,"memory_mb":4096,"disk_mb":100,"measured":{"cpus":8,"memory_mb":2048,"disk_mb":100}}`, 400,
			"cpus 1024 is more than the 8 the host measured; memory_mb 4096 is more than the 2048 the host measured"},
		{"measured out of range", "POST", "/v1/hosts", `{"name":"b9","role":"back","public_key":"` + testKey(9) + `","cpus":1,"memory_mb":1,"disk_mb":1,"measured":{"cpus":0,"memory_mb":1,"disk_mb":1}}`, 400, "measured capacity out of range (cpus 0-1024, memory_mb and disk_mb positive)"},
		{"unknown host", "GET", "/v1/hosts/nope", "", 404, `no host "nope"`},
		{"decommission unknown host", "POST", "/v1/hosts/nope/decommission", "", 404, `no host "nope"`},

		// apps
		{"app name", "POST", "/v1/apps", `{"name":"-web","image":"x:1"}`, 400, `app name "-web": use 1-63...`},
		{"app image", "POST", "/v1/apps", `{"name":"api","image":"no spaces:1","container_port":80}`, 400, "image must be an image reference such as registry.example/team/app:1.2"},
		{"app container port", "POST", "/v1/apps", `{"name":"api","image":"x:1","container_port":65536}`, 400, "container_port must be 1-65535"},
		{"image app without a port", "POST", "/v1/apps", `{"name":"api","image":"x:1"}`, 400, "container_port must be 1-65535"},
		{"image app on port 0", "POST", "/v1/apps", `{"name":"api","image":"x:1","container_port":0}`, 400, "container_port must be 1-65535"},
		{"upload name", "POST", "/v1/apps/Web/tarball", "", 400, `app name "Web": use 1-63...`},
		{"app named new", "POST", "/v1/apps", `{"name":"new","image":"x:1","container_port":80}`, 400, `app name "new" is reserved (the web UI's create page); choose another`},
		{"upload named new", "POST", "/v1/apps/new/tarball", "tar", 400, `app name "new" is reserved (the web UI's create page); choose another`},
		{"upload port", "POST", "/v1/apps/api/tarball?container_port=0", "", 400, "container_port must be 1-65535"},
		{"upload over an existing app is a new version, checked as any", "POST", "/v1/apps/web/tarball", "tar", 400, "not a docker save tarball: ..."},
		{"unknown app", "GET", "/v1/apps/nope", "", 404, `no app "nope"`},
		{"blob digest", "GET", "/v1/blobs/md5:abc", "", 400, "..."},
		{"blob not here", "GET", "/v1/blobs/sha256:" + strings.Repeat("0", 64), "", 404, "blob sha256:" + strings.Repeat("0", 64) + " is not on this node"},

		// installations
		{"installation named new", "POST", "/v1/installations", `{"name":"new","app":"web","fronts":1,"backs":1,"domain":"x.example"}`, 400, `installation name "new" is reserved (the web UI's create page); choose another`},
		{"installation fronts", "POST", "/v1/installations", `{"name":"x","app":"web","fronts":0,"backs":1,"domain":"x.example"}`, 400, "fronts must be between 1 and 64"},
		{"installation backs", "POST", "/v1/installations", `{"name":"x","app":"web","fronts":1,"backs":257,"domain":"x.example"}`, 400, "backs must be between 1 and 256"},
		{"installation domain", "POST", "/v1/installations", `{"name":"x","app":"web","fronts":1,"backs":1,"domain":"X.example"}`, 400, "domain must be a lowercase DNS name such as hello.example.com"},
		{"installation cpus", "POST", "/v1/installations", installationBody(`,"cpus":0.001`), 400, "cpus must be between 0.01 and 256 (default 0.5)"},
		{"installation memory", "POST", "/v1/installations", installationBody(`,"memory_mb":5`), 400, "memory_mb must be at least 6 (default 256)"},
		{"installation disk", "POST", "/v1/installations", installationBody(`,"disk_mb":-1`), 400, "disk_mb must not be negative"},
		{"installation port", "POST", "/v1/installations", installationBody(`,"container_port":-1`), 400, "container_port must be 1-65535"},
		{"installation env count", "POST", "/v1/installations", installationBody(env(MaxEnvVars + 1)), 400, "at most 128 env variables"},
		{"installation env name", "POST", "/v1/installations", installationBody(`,"env":{"1X":"v"}`), 400, `env "1X": names are letters, digits and _, values at most 4096 bytes`},
		{"installation env value", "POST", "/v1/installations", installationBody(`,"env":{"X":"` + strings.Repeat("v", MaxEnvValue+1) + `"}`), 400, `env "X": names are letters, digits and _, values at most 4096 bytes`},
		{"installation env value with NUL", "POST", "/v1/installations", installationBody(`,"env":{"X":"a\u0000b"}`), 400, `env "X": values must not contain NUL characters`},
		{"installation problems joined", "POST", "/v1/installations", `{"name":"x","app":"web","fronts":0,"backs":0,"domain":"x.example"}`, 400, "fronts must be between 1 and 64; backs must be between 1 and 256"},
		{"installation of unknown app", "POST", "/v1/installations", `{"name":"x","app":"nope","fronts":1,"backs":1,"domain":"x.example"}`, 400, `unknown app "nope"; upload it or register an image first`},
		{"installation exists", "POST", "/v1/installations", installationBody(""), 409, `installation "shop" already exists`},
		{"installation beyond capacity", "POST", "/v1/installations", `{"name":"big","app":"web","fronts":1,"backs":3,"domain":"big.example"}`, 409, "..."},
		{"unknown installation", "GET", "/v1/installations/nope", "", 404, `no installation "nope"`},
		{"scale nothing", "POST", "/v1/installations/shop/scale", `{}`, 400, "give fronts, backs or both"},
		{"scale fronts", "POST", "/v1/installations/shop/scale", `{"fronts":65}`, 400, "fronts must be between 1 and 64"},
		{"scale backs", "POST", "/v1/installations/shop/scale", `{"backs":0}`, 400, "backs must be between 1 and 256 (delete the installation to stop it)"},
		{"scale unknown", "POST", "/v1/installations/nope/scale", `{"backs":1}`, 404, `no installation "nope"`},

		// cluster
		{"voter id", "POST", "/v1/cluster/voters", `{"id":"-x","raft_address":"127.0.0.1:8411"}`, 400, "id must be 1-64 of A-Za-z0-9._- (the new node's --id)"},
		{"voter address", "POST", "/v1/cluster/voters", `{"id":"core2","raft_address":"127.0.0.1"}`, 400, "raft_address must be the new node's raft host:port"},
		{"voter id taken", "POST", "/v1/cluster/voters", `{"id":"core1","raft_address":"127.0.0.1:8411"}`, 409, `node "core1" is already a member at 127.0.0.1:8401; remove it first`},
		{"voter address taken", "POST", "/v1/cluster/voters", `{"id":"core2","raft_address":"127.0.0.1:8401"}`, 409, `raft address 127.0.0.1:8401 belongs to node "core1"`},
		{"remove unknown voter", "DELETE", "/v1/cluster/voters/core9", "", 404, `no raft member "core9"`},
		{"remove the only voter", "DELETE", "/v1/cluster/voters/core1", "", 409, "cannot remove the only member of the group"},
		{"core node record", "POST", "/v1/internal/core-nodes", `{"id":"core2"}`, 400, "core node needs id and api_url"},
		{"heartbeat without a reconciler", "POST", "/v1/internal/heartbeat", `{"host_id":"h-1"}`, 501, "heartbeats are not handled by this node"},

		// query strings and headers
		{"blocking index", "GET", "/v1/hosts?index=-1", "", 400, "index must be a non-negative integer"},
		{"blocking wait", "GET", "/v1/apps?index=1&wait=forever", "", 400, "wait must be a positive duration such as 30s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(request{method: tc.method, path: tc.path, token: operatorToken, body: tc.body})
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			msg := errorOf(t, rec)
			if prefix, ok := strings.CutSuffix(tc.error, "..."); ok {
				require.True(t, strings.HasPrefix(msg, prefix), "%q does not start with %q", msg, prefix)
				return
			}
			require.Equal(t, tc.error, msg)
		})
	}

	t.Run("request id", func(t *testing.T) {
		rec := f.do(request{method: "POST", path: "/v1/tokens", token: operatorToken, body: `{}`, header: map[string]string{HeaderRequestID: "has spaces"}})
		require.Equal(t, http.StatusBadRequest, rec.Code)
		require.Equal(t, "X-Request-Id must be 1-128 characters of A-Z a-z 0-9 . _ : -", errorOf(t, rec))
	})
	t.Run("a join token is checked before the body", func(t *testing.T) {
		rec := f.do(request{method: "POST", path: "/v1/hosts", token: join.Token, body: `{"name":"x"`})
		require.Equal(t, http.StatusBadRequest, rec.Code)
		require.Contains(t, errorOf(t, rec), "malformed JSON body")
	})
	t.Run("rejected writes change nothing", func(t *testing.T) {
		require.Len(t, f.node.State().Installations, 1)
		require.Len(t, f.node.State().Hosts, 3)
	})
}
