package fsm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// TestTLSModeChangeDropsKeys: switching an installation's HTTPS off drops
// its domain's certificates, keys and status from the store; switching
// between acme and manual drops what the new mode does not use; changing
// only redirect or HSTS keeps everything.
func TestTLSModeChangeDropsKeys(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	put := func(k string) *fsm.Command {
		return certCmd(fsm.CmdCertPut, fsm.CertCommand{Key: k, Value: []byte("v")}, t0)
	}
	setTLS := func(o *fsm.TLSOptions) *fsm.Command {
		return certCmd(fsm.CmdSetInstallationTLS, fsm.CertCommand{Key: "site", TLS: o}, t0)
	}
	status := certCmd(fsm.CmdSetTLSStatus, fsm.CertCommand{Key: "site.example", Status: &fsm.TLSStatus{State: fsm.TLSStateValid}}, t0)
	acmeKeys := []string{"certificates/ca/site.example/site.example.crt", "certificates/ca/site.example/site.example.key",
		"failures/site.example.json", "acme/ca/challenge_tokens/site.example.json", "ocsp/site.example-3674df6a"}
	const uploaded = "manual/site.example/cert.pem"
	others := []string{"acme/ca/users/ops/ops.json", "certificates/ca/other.example/other.example.key"}
	// change: the installation's HTTPS from, the store filled as both
	// modes would have left it, then HTTPS set to to.
	change := func(from, to *fsm.TLSOptions) []*fsm.Command {
		out := []*fsm.Command{setTLS(from)}
		for _, k := range append(append(append([]string{}, acmeKeys...), uploaded), others...) {
			out = append(out, put(k))
		}
		return append(out, status, setTLS(to))
	}
	tests := []struct {
		name       string
		cmds       []*fsm.Command
		keys       []string // left in the store, sorted
		keepStatus bool
	}{{
		name: "acme to off drops the domain's keys and status",
		cmds: change(&fsm.TLSOptions{Mode: fsm.TLSACME}, nil),
		keys: others,
	}, {
		name: "manual to off, given as mode off",
		cmds: change(&fsm.TLSOptions{Mode: fsm.TLSManual}, &fsm.TLSOptions{Mode: fsm.TLSOff}),
		keys: others,
	}, {
		name: "acme to manual keeps the upload only",
		cmds: change(&fsm.TLSOptions{Mode: fsm.TLSACME}, &fsm.TLSOptions{Mode: fsm.TLSManual}),
		keys: []string{"acme/ca/users/ops/ops.json", "certificates/ca/other.example/other.example.key", uploaded},
	}, {
		name: "manual to acme drops the upload",
		cmds: change(&fsm.TLSOptions{Mode: fsm.TLSManual}, &fsm.TLSOptions{Mode: fsm.TLSACME}),
		keys: []string{"acme/ca/challenge_tokens/site.example.json", "acme/ca/users/ops/ops.json",
			"certificates/ca/other.example/other.example.key", "certificates/ca/site.example/site.example.crt",
			"certificates/ca/site.example/site.example.key", "failures/site.example.json"},
	}, {
		name: "redirect and HSTS changes keep everything",
		cmds: change(&fsm.TLSOptions{Mode: fsm.TLSACME}, &fsm.TLSOptions{Mode: fsm.TLSACME, RedirectHTTP: true, HSTSMaxAge: time.Hour}),
		keys: []string{"acme/ca/challenge_tokens/site.example.json", "acme/ca/users/ops/ops.json",
			"certificates/ca/other.example/other.example.key", "certificates/ca/site.example/site.example.crt",
			"certificates/ca/site.example/site.example.key", "failures/site.example.json", uploaded, "ocsp/site.example-3674df6a"},
		keepStatus: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fsm.New()
			for _, c := range append(script(), tc.cmds...) {
				require.NoError(t, fsmtest.Apply(t, f, c).Err)
			}
			st := f.State()
			require.Equal(t, tc.keys, st.CertKeys("", true))
			require.Equal(t, tc.keepStatus, st.TLSStatus["site.example"] != nil)
		})
	}
}

func TestCertKeyDomain(t *testing.T) {
	for _, tc := range []struct{ key, domain string }{
		{"certificates/acme-v02/site.example/site.example.key", "site.example"},
		{"acme/ca/challenge_tokens/site.example.json", "site.example"},
		{"manual/site.example/cert.pem", "site.example"},
		{"failures/site.example.json", "site.example"},
		{"ocsp/my-site.example-3674df6a", "my-site.example"},
		{"ocsp/nohash", ""},
		{"acme/ca/users/ops/ops.json", ""},
		{"last_clean.json", ""},
	} {
		require.Equal(t, tc.domain, fsm.CertKeyDomain(tc.key), tc.key)
	}
}
