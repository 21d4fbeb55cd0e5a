package fsm_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
	"potluck/internal/version"
)

var update = flag.Bool("update", false, "rewrite testdata/snapshot-v1.json from goldenLog")

const goldenFile = "snapshot-v1.json"

type goldenEntry struct {
	cmd    *fsm.Command
	reject fsm.Code // the code the command is rejected with, "" when it applies
}

// goldenLog builds a state that sets every field of every type in a
// snapshot: hosts of both roles in every status, a core node, an allocator
// that freed addresses, apps from an image and from a tarball, installations
// with env, instances in every state, join tokens (expiring, revoked) and
// request records of applied and rejected requests.
func goldenLog() []goldenEntry {
	expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	log := []goldenEntry{
		{cmd: &fsm.Command{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
		{cmd: &fsm.Command{Type: fsm.CmdCreateToken, RequestID: "req-token", Token: &fsm.JoinToken{
			ID: "tok-lenders", Hash: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", Description: "lenders of the first round", ExpiresAt: &expires}}},
		{cmd: &fsm.Command{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "tok-old", Hash: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"}}},
		{cmd: &fsm.Command{Type: fsm.CmdRevokeToken, RequestID: "req-revoke", Name: "tok-old"}},
		{cmd: &fsm.Command{Type: fsm.CmdCreateToken, RequestID: "req-owner", Token: &fsm.JoinToken{ID: "tok-owner", Scope: fsm.ScopeAppOwner,
			Hash: "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce", Apps: []string{"blog"}, Installations: []string{"site"}}}},
		{cmd: &fsm.Command{Type: fsm.CmdRotateOperatorToken, RequestID: "req-rotate", Grace: time.Hour,
			OperatorTokenHash: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"}},
		{cmd: &fsm.Command{Type: fsm.CmdUpsertCoreNode, RequestID: "req-core", CoreNode: &fsm.CoreNode{
			ID: "core1", APIURL: "https://127.0.0.1:8400", RaftAddr: "127.0.0.1:8300", PublicKey: "Tm9kZUtleU5vZGVLZXlOb2RlS2V5Tm9kZUtleU5vZGU=",
			MeshEndpoint: "127.0.0.1:51820", TunnelAddr: netip.MustParseAddr("100.64.0.1"), AgentPort: 7070,
			Build: version.Info{Version: "v0.3.0", Commit: "0123456789abcdef0123456789abcdef01234567", Modified: true, Time: "2026-03-01T12:00:00Z", GoVersion: "go1.26.0", Platform: "linux/amd64"}}}},
	}
	statuses := []fsm.HostStatus{fsm.HostReady, fsm.HostPending, fsm.HostDown, fsm.HostDraining, fsm.HostDecommissioned}
	var changes []fsm.HostStatusChange
	for _, role := range []fsm.Role{fsm.RoleBack, fsm.RoleFront} {
		for i, status := range statuses {
			id := fmt.Sprintf("%s-%d", role, i+1)
			h := &fsm.Host{ID: id, Name: id, Role: role, PublicKey: fmt.Sprintf("key-%s", id), TokenID: "tok-lenders",
				Status: fsm.HostReady, Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 8192, DiskMB: 20000}}
			if role == fsm.RoleFront {
				h.Endpoint = fmt.Sprintf("127.0.0.1:%d", 8080+i)
				h.PublicURL = fmt.Sprintf("https://front%d.example.net", i+1)
			} else {
				h.Measured = &fsm.Resources{MilliCPU: 8000, MemoryMB: 16384, DiskMB: 10000}
				h.Arch, h.Storage, h.Region, h.Lender = "amd64", "ssd", "eu-west", fmt.Sprintf("lender-%d", i%2)
				h.Labels = map[string]string{"rack": fmt.Sprintf("r%d", i)}
			}
			log = append(log, goldenEntry{cmd: &fsm.Command{Type: fsm.CmdRegisterHost, RequestID: "req-" + id, Host: h}})
			if status != fsm.HostReady {
				changes = append(changes, fsm.HostStatusChange{HostID: id, Status: status})
			}
		}
	}
	per := fsm.Resources{MilliCPU: 500, MemoryMB: 256, DiskMB: 100}
	log = append(log,
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCreateApp, RequestID: "req-app-web", App: &fsm.App{Name: "web", Image: "nginx:1.27", ContainerPort: 80}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCreateApp, RequestID: "req-app-blog", App: &fsm.App{Name: "blog", Image: "blog:2",
			Digest: "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", Size: 52428800, ContainerPort: 8080, UncompressedSize: 157286400}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCreateApp, RequestID: "req-app-again", App: &fsm.App{Name: "web", Image: "nginx:1.28"}}, reject: fsm.CodeConflict},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCreateInstallation, RequestID: "req-site", Installation: &fsm.Installation{
			Name: "site", App: "web", Fronts: 1, Backs: 2, Domain: "site.example.com", PerInstance: per, ContainerPort: 80,
			Env: map[string]string{"MODE": "production", "GREETING": "hello"}, FrontHosts: []string{"front-1"},
		}, Instances: []*fsm.Instance{
			{ID: "inst-1", Installation: "site", HostID: "back-1", Port: 5000},
			{ID: "inst-2", Installation: "site", HostID: "back-2", Port: 5000},
		}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCreateInstallation, RequestID: "req-blog", Installation: &fsm.Installation{
			Name: "blog", App: "blog", Fronts: 2, Backs: 2, Domain: "blog.example.com", PerInstance: per, ContainerPort: 8080,
			Env: map[string]string{"DB": "sqlite"}, FrontHosts: []string{"front-2", "front-1"},
			Placement: &fsm.Placement{Policy: "pack", Requires: map[string]string{"arch": "amd64"},
				Spread: []fsm.SpreadConstraint{{By: "lender", Max: 1}}, MaxPerHost: 2},
		}, Instances: []*fsm.Instance{
			{ID: "inst-3", Installation: "blog", HostID: "back-1", Port: 5001},
			{ID: "inst-4", Installation: "blog", HostID: "back-3", Port: 5000},
		}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdPlan, RequestID: "req-report", Plan: &fsm.Plan{Update: []fsm.InstanceUpdate{
			{ID: "inst-1", State: fsm.InstanceRunning},
			{ID: "inst-2", State: fsm.InstanceFailed, Message: "exit status 1"},
			{ID: "inst-3", State: fsm.InstanceLost, Message: "container vanished"},
		}}}},
		// Releases: blog gets a second app version and a second release
		// that goes live (its old instances drain); site's second release
		// fails.
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdPushAppVersion, RequestID: "req-blog-v2", App: &fsm.App{Name: "blog", Image: "blog:3",
			Digest: "sha256:486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7", Size: 53477376, ContainerPort: 8080, UncompressedSize: 160432128}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdDeployRelease, RequestID: "req-blog-r2", Name: "blog", Release: &fsm.Release{
			Version: 2, App: "blog", AppVersion: 2, PerInstance: per, Env: map[string]string{"DB": "postgres"}, ContainerPort: 8080,
			Description: "blog:3 with postgres",
			Health:      &fsm.HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: 2 * time.Second, Healthy: 2, Unhealthy: 3, Grace: 10 * time.Second},
		}, Instances: []*fsm.Instance{
			{ID: "inst-5", Installation: "blog", HostID: "back-1", Port: 5002, Release: 2},
			{ID: "inst-6", Installation: "blog", HostID: "back-3", Port: 5001, Release: 2},
		}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdPromoteRelease, RequestID: "req-blog-r2-live", Name: "blog", Release: &fsm.Release{Version: 2}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdDeployRelease, RequestID: "req-site-r2", Name: "site", Release: &fsm.Release{
			Version: 2, App: "web", AppVersion: 1, PerInstance: per, ContainerPort: 8081,
		}, Instances: []*fsm.Instance{
			{ID: "inst-7", Installation: "site", HostID: "back-1", Port: 5003, Release: 2},
			{ID: "inst-8", Installation: "site", HostID: "back-2", Port: 5001, Release: 2},
		}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdFailRelease, RequestID: "req-site-r2-failed", Name: "site", Release: &fsm.Release{Version: 2, Message: "instance inst-7: app does not answer on port 8081"}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdPlan, RequestID: "req-hosts", Plan: &fsm.Plan{Hosts: changes}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdSetPlacementPolicy, RequestID: "req-policy", Name: "pack"}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdRetireInstallation, RequestID: "req-retire", Name: "site"}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdSetPlacementPolicy, Name: "first-fit"}, reject: fsm.CodeInvalid},
		// Web UI sessions: one of the operator's, one of an app owner's
		// that logged out again.
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCreateUISession, UISession: &fsm.UISession{
			Hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Sealed: []byte("sealed-operator-token"),
			TokenID: fsm.OperatorTokenID, TokenHash: "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b", ExpiresAt: expires}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCreateUISession, UISession: &fsm.UISession{
			Hash: "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35", Sealed: []byte("sealed-owner-token"),
			TokenID: "tok-owner", TokenHash: "4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce", ExpiresAt: expires}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdDeleteUISession, RequestID: "req-logout", Name: "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"}},
		// The certificate store: a sealed value, a lock, blog served over
		// HTTPS with its Front's report.
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdSetInstallationTLS, RequestID: "req-blog-tls", Cert: &fsm.CertCommand{Key: "blog",
			TLS: &fsm.TLSOptions{Mode: fsm.TLSACME, RedirectHTTP: true, HSTSMaxAge: 365 * 24 * time.Hour}}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCertPut, RequestID: "req-cert", Cert: &fsm.CertCommand{
			Key: "certificates/acme-v02/blog.example.com/blog.example.com.crt", Value: []byte("sealed-bytes")}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdCertLock, Cert: &fsm.CertCommand{Key: "issue_cert_blog.example.com", Owner: "front-1",
			Expires: time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)}}},
		goldenEntry{cmd: &fsm.Command{Type: fsm.CmdSetTLSStatus, Cert: &fsm.CertCommand{Key: "blog.example.com", Status: &fsm.TLSStatus{
			State: fsm.TLSStateError, Error: "HTTP-01 challenge failed", Issuer: "acme-v02", NotAfter: &expires, NextAttempt: &expires, Host: "front-1"}}}},
	)
	log = append(log, autoscaleGolden()...)
	// back-2 restarts with the HTTP gateway, elsewhere.
	log = append(log, goldenEntry{cmd: &fsm.Command{Type: fsm.CmdSetHostAnnounced, Host: &fsm.Host{ID: "back-2", Region: "eu-east", HTTPGateway: true}}})
	return log
}

// TestGoldenSnapshot guards the raft snapshot format, meshnet.Allocator's
// JSON inside it included: every core node keeps snapshots on disk and
// restores them after an upgrade.
func TestGoldenSnapshot(t *testing.T) {
	path := filepath.Join("testdata", goldenFile)
	if *update {
		f := fsm.New()
		for _, e := range goldenLog() {
			res := fsmtest.Apply(t, f, e.cmd)
			require.Equal(t, e.reject, fsm.CodeOf(res.Err), "%s %s: %v", e.cmd.Type, e.cmd.RequestID, res.Err)
		}
		var indented bytes.Buffer
		require.NoError(t, json.Indent(&indented, fsmtest.Persist(t, f), "", "  "))
		require.NoError(t, os.WriteFile(path, indented.Bytes(), 0o644))
	}
	// The file is indented so that a format change reads as a line diff in
	// review; compacted, it is what Persist writes to disk.
	file, err := os.ReadFile(path)
	require.NoError(t, err)
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, file))
	want := append(compact.Bytes(), '\n') // json.Encoder ends its output with a newline
	restored := fsmtest.Restore(t, want)
	got := fsmtest.Persist(t, restored)
	if !bytes.Equal(got, want) {
		t.Fatalf("restoring %s and persisting it again no longer gives the same bytes: the raft snapshot format changed.\n"+
			"Core nodes hold snapshots in the old format and restore them after an upgrade, so a format change must be deliberate and reviewed:\n"+
			"keep old snapshots restorable (new fields optional, no renames), then regenerate with\n"+
			"\tgo test ./core/fsm -run Golden -update\n"+
			"and commit the new file with the change.\n%s", path, firstDiff(want, got))
	}

	st := restored.State()
	zero := map[string]bool{}
	walkFields(reflect.ValueOf(st), zero)
	var missing []string
	for field, isZero := range zero {
		if isZero {
			missing = append(missing, field)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "fields zero everywhere in %s: set them in goldenLog, so the golden file covers them, and regenerate with -update", path)

	for _, h := range st.SortedHosts() {
		if h.Status == fsm.HostDecommissioned {
			require.False(t, st.Addresses.InUse(h.TunnelAddr), "the golden allocator must hold freed addresses (%s of %s)", h.TunnelAddr, h.Name)
		}
	}
}

// walkFields records, for every field of every fsm struct reachable from v,
// whether it is zero in all the values seen (zero[Type.Field]).
func walkFields(v reflect.Value, zero map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkFields(v.Elem(), zero)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkFields(v.MapIndex(k), zero)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkFields(v.Index(i), zero)
		}
	case reflect.Struct:
		typ := v.Type()
		if typ.PkgPath() != reflect.TypeFor[fsm.State]().PkgPath() {
			return // time.Time, netip.Addr, meshnet.Allocator: leaves
		}
		for i := range typ.NumField() {
			if !typ.Field(i).IsExported() {
				continue
			}
			key := typ.Name() + "." + typ.Field(i).Name
			isZero, seen := zero[key]
			zero[key] = (isZero || !seen) && v.Field(i).IsZero()
			walkFields(v.Field(i), zero)
		}
	}
}

func firstDiff(want, got []byte) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-80)
	return fmt.Sprintf("first difference at byte %d:\nwant ...%s\n got ...%s", i, want[from:min(len(want), i+80)], got[from:min(len(got), i+80)])
}
