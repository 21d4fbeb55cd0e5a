package agentapi

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
	"potluck/core/api"
	"potluck/core/certseal"
	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// TestCertStoreAccess: only the Fronts of an installation read and write
// its certificate; values are sealed in the state and opened for them.
func TestCertStoreAccess(t *testing.T) {
	f := fsm.New()
	apply := func(c *fsm.Command) {
		t.Helper()
		require.NoError(t, fsmtest.Apply(t, f, c).Err)
	}
	apply(&fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "t", Hash: "h"}})
	for i, h := range []struct {
		id   string
		role fsm.Role
	}{{"front1", fsm.RoleFront}, {"front2", fsm.RoleFront}, {"back", fsm.RoleBack}} {
		apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: h.id, Name: h.id, Role: h.role, PublicKey: "key-" + h.id,
			TunnelAddr: netip.AddrFrom4([4]byte{100, 64, 1, byte(1 + i)}), TokenID: "t", Status: fsm.HostReady,
			Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1000, DiskMB: 1000}}})
	}
	apply(&fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "a", Image: "x:1", ContainerPort: 80}})
	apply(&fsm.Command{Type: fsm.CmdCreateInstallation,
		Installation: &fsm.Installation{Name: "shop", App: "a", Fronts: 1, Backs: 1, Domain: "shop.example", ContainerPort: 80, FrontHosts: []string{"front1"},
			TLS: &fsm.TLSOptions{Mode: fsm.TLSACME}},
		Instances: []*fsm.Instance{{ID: "i1", Installation: "shop", HostID: "back", Port: 5000}}})

	sealer, err := certseal.New(bytes.Repeat([]byte{1}, 32))
	require.NoError(t, err)
	write := func(ctx context.Context, req api.CertStoreRequest) error {
		cmd, err := api.CertStoreCommand(req, fsmtest.TimeAt(f.State().Index+1))
		if err != nil {
			return err
		}
		return fsmtest.Apply(t, f, cmd).Err
	}
	h := New(Config{State: f, Identify: func(r *http.Request) (string, bool) { return r.Header.Get("X-Test-Key"), true },
		Certs: &CertStore{Seal: sealer.Seal, Open: sealer.Open, Write: write}})
	call := func(host, method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("X-Test-Key", "key-"+host)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	const crt = "certificates/acme/shop.example/shop.example.key"
	steps := []struct {
		host, method, path, body string
		code                     int
		want                     string
	}{
		{"back", "PUT", agentproto.PathCerts + crt, "secret", 403, "for Fronts"},
		{"front2", "PUT", agentproto.PathCerts + crt, "secret", 403, "serves no installation"},
		{"front1", "PUT", agentproto.PathCerts + crt, "-----PRIVATE KEY-----", 204, ""},
		{"front1", "GET", agentproto.PathCerts + crt, "", 200, "-----PRIVATE KEY-----"},
		{"front2", "GET", agentproto.PathCerts + crt, "", 403, "serves no installation"},
		{"front1", "GET", agentproto.PathCerts + crt + "?stat=true", "", 200, `"terminal":true`},
		{"front1", "GET", agentproto.PathCerts + "certificates/acme/shop.example?stat=true", "", 200, `"terminal":false`},
		{"front1", "GET", agentproto.PathCerts + "?list=certificates&recursive=true", "", 200, crt},
		{"front2", "GET", agentproto.PathCerts + "?list=certificates&recursive=true", "", 200, `{"keys":[]}`},
		{"front2", "PUT", agentproto.PathCerts + "acme/ca/users/ops/ops.json", "account", 204, ""}, // shared by every Front
		{"front1", "GET", agentproto.PathCerts + "acme/ca/users/ops/ops.json", "", 200, "account"},
		{"front1", "GET", agentproto.PathCerts + "certificates%2F..%2F..%2Fx", "", 400, "bad certificate store key"},
		{"front2", "PUT", agentproto.PathCerts + "failures/shop.example.json", "{}", 403, "serves no installation"},
		{"front1", "PUT", agentproto.PathCerts + "failures/shop.example.json", "{}", 204, ""},
		{"front1", "POST", agentproto.PathCertLocks + "issue_cert_shop.example?ttl=1m", "", 204, ""},
		{"front2", "POST", agentproto.PathCertLocks + "issue_cert_shop.example?ttl=1m", "", 409, "held by front1"},
		{"front2", "DELETE", agentproto.PathCertLocks + "issue_cert_shop.example", "", 404, "not held by front2"},
		{"front1", "DELETE", agentproto.PathCertLocks + "issue_cert_shop.example", "", 204, ""},
		{"front1", "POST", agentproto.PathCertLocks + "x?ttl=1h", "", 400, "ttl must be"},
		{"front1", "POST", agentproto.PathTLSStatus, `{"domain":"shop.example","state":"error","error":"NXDOMAIN"}`, 204, ""},
		{"front2", "POST", agentproto.PathTLSStatus, `{"domain":"shop.example","state":"valid"}`, 403, "serves no installation"},
		{"front1", "POST", agentproto.PathTLSStatus, `{"domain":"shop.example","state":"great"}`, 400, "state must be"},
		{"front1", "DELETE", agentproto.PathCerts + "certificates/acme/shop.example", "", 204, ""},
		{"front1", "GET", agentproto.PathCerts + crt, "", 404, "no such key"},
	}
	for i, s := range steps {
		code, body := call(s.host, s.method, s.path, s.body)
		require.Equal(t, s.code, code, "step %d: %s %s %s: %s", i, s.host, s.method, s.path, body)
		require.Contains(t, body, s.want, "step %d", i)
		if i == 2 {
			v := f.State().Certs[crt].Value
			require.NotContains(t, string(v), "PRIVATE KEY", "sealed in the replicated state")
		}
	}
	require.Equal(t, "NXDOMAIN", f.State().TLSStatus["shop.example"].Error)
	require.Equal(t, "front1", f.State().TLSStatus["shop.example"].Host)

	// The route carries the installation's HTTPS settings to its Front.
	d := Desired(f.State(), f.State().Hosts["front1"])
	require.Equal(t, &agentproto.RouteTLS{Mode: "acme"}, d.Routes[0].TLS)
}
