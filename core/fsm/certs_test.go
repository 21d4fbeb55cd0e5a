package fsm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

func certCmd(t fsm.CommandType, c fsm.CertCommand, at time.Time) *fsm.Command {
	return &fsm.Command{Type: t, Time: at, Cert: &c}
}

func TestCertStore(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	put := func(k string) *fsm.Command {
		return certCmd(fsm.CmdCertPut, fsm.CertCommand{Key: k, Value: []byte("v")}, t0)
	}
	lock := func(owner string, at time.Time, ttl time.Duration) *fsm.Command {
		return certCmd(fsm.CmdCertLock, fsm.CertCommand{Key: "issue_cert_a.example", Owner: owner, Expires: at.Add(ttl)}, at)
	}
	tests := []struct {
		name   string
		cmds   []*fsm.Command
		reject fsm.Code // of the last command
		check  func(t *testing.T, st *fsm.State)
	}{{
		name: "delete removes a key and everything under it",
		cmds: []*fsm.Command{put("certificates/ca/a.example/a.example.crt"), put("certificates/ca/a.example/a.example.key"), put("certificates/ca/b.example/b.example.crt"),
			certCmd(fsm.CmdCertDelete, fsm.CertCommand{Key: "certificates/ca/a.example"}, t0)},
		check: func(t *testing.T, st *fsm.State) {
			require.Equal(t, []string{"certificates/ca/b.example/b.example.crt"}, st.CertKeys("", true))
		},
	}, {
		name: "listing: direct children once, or every key below",
		cmds: []*fsm.Command{put("certificates/ca/a.example/a.example.crt"), put("certificates/ca/a.example/a.example.key"), put("acme/ca/users/x.json")},
		check: func(t *testing.T, st *fsm.State) {
			require.Equal(t, []string{"certificates/ca"}, st.CertKeys("certificates", false))
			require.Equal(t, []string{"certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.key"}, st.CertKeys("certificates/", true))
			require.Equal(t, []string{"acme", "certificates"}, st.CertKeys("", false))
		},
	}, {
		name:   "deleting a missing key is not found",
		cmds:   []*fsm.Command{certCmd(fsm.CmdCertDelete, fsm.CertCommand{Key: "nothing"}, t0)},
		reject: fsm.CodeNotFound,
	}, {
		name:   "a key climbing out is refused",
		cmds:   []*fsm.Command{put("certificates/../x")},
		reject: fsm.CodeInvalid,
	}, {
		name:   "a held lock is refused to another owner",
		cmds:   []*fsm.Command{lock("f1", t0, time.Minute), lock("f2", t0.Add(time.Second), time.Minute)},
		reject: fsm.CodeConflict,
	}, {
		name: "an expired lock goes to the next owner",
		cmds: []*fsm.Command{lock("f1", t0, time.Minute), lock("f2", t0.Add(2*time.Minute), time.Minute)},
		check: func(t *testing.T, st *fsm.State) {
			require.Equal(t, "f2", st.CertLocks["issue_cert_a.example"].Owner)
		},
	}, {
		name: "the owner renews its lock, then unlocks it",
		cmds: []*fsm.Command{lock("f1", t0, time.Minute), lock("f1", t0.Add(30*time.Second), time.Minute),
			certCmd(fsm.CmdCertUnlock, fsm.CertCommand{Key: "issue_cert_a.example", Owner: "f1"}, t0)},
		check: func(t *testing.T, st *fsm.State) { require.Empty(t, st.CertLocks) },
	}, {
		name:   "only the owner unlocks",
		cmds:   []*fsm.Command{lock("f1", t0, time.Minute), certCmd(fsm.CmdCertUnlock, fsm.CertCommand{Key: "issue_cert_a.example", Owner: "f2"}, t0)},
		reject: fsm.CodeNotFound,
	}, {
		name:   "a lock beyond the longest TTL is refused",
		cmds:   []*fsm.Command{lock("f1", t0, time.Hour)},
		reject: fsm.CodeInvalid,
	}, {
		name:   "a value too large is refused",
		cmds:   []*fsm.Command{certCmd(fsm.CmdCertPut, fsm.CertCommand{Key: "k", Value: make([]byte, fsm.MaxCertValueBytes+1)}, t0)},
		reject: fsm.CodeInvalid,
	}, {
		name:   "status for a domain no installation serves is refused",
		cmds:   []*fsm.Command{certCmd(fsm.CmdSetTLSStatus, fsm.CertCommand{Key: "nobody.example", Status: &fsm.TLSStatus{State: fsm.TLSStateError}}, t0)},
		reject: fsm.CodeNotFound,
	}, {
		name: "TLS options and a status for the installation's domain",
		cmds: []*fsm.Command{
			certCmd(fsm.CmdSetInstallationTLS, fsm.CertCommand{Key: "site", TLS: &fsm.TLSOptions{Mode: fsm.TLSACME, RedirectHTTP: true}}, t0),
			certCmd(fsm.CmdSetTLSStatus, fsm.CertCommand{Key: "site.example", Status: &fsm.TLSStatus{State: fsm.TLSStateError, Error: "no such domain", Host: "f1"}}, t0),
		},
		check: func(t *testing.T, st *fsm.State) {
			require.Equal(t, fsm.TLSACME, st.Installations["site"].TLS.Mode)
			require.Equal(t, "no such domain", st.TLSStatus["site.example"].Error)
			require.Equal(t, t0, st.TLSStatus["site.example"].Updated)
		},
	}, {
		name: "deleting the installation drops its domain's keys and status, not the others'",
		cmds: []*fsm.Command{put("certificates/ca/site.example/site.example.key"), put("manual/site.example/cert.pem"),
			put("failures/site.example.json"), put("acme/ca/challenge_tokens/site.example.json"),
			put("certificates/ca/other.example/other.example.key"), put("acme/ca/users/ops/ops.json"),
			certCmd(fsm.CmdSetTLSStatus, fsm.CertCommand{Key: "site.example", Status: &fsm.TLSStatus{State: fsm.TLSStateValid}}, t0),
			{Type: fsm.CmdDeleteInstallation, Name: "site"}},
		check: func(t *testing.T, st *fsm.State) {
			require.Equal(t, []string{"acme/ca/users/ops/ops.json", "certificates/ca/other.example/other.example.key"}, st.CertKeys("", true))
			require.Empty(t, st.TLSStatus)
		},
	}, {
		name:   "redirect without HTTPS is refused",
		cmds:   []*fsm.Command{certCmd(fsm.CmdSetInstallationTLS, fsm.CertCommand{Key: "site", TLS: &fsm.TLSOptions{RedirectHTTP: true}}, t0)},
		reject: fsm.CodeInvalid,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fsm.New()
			for _, c := range script() {
				require.NoError(t, fsmtest.Apply(t, f, c).Err)
			}
			var res fsm.Result
			for i, c := range tc.cmds {
				res = fsmtest.Apply(t, f, c)
				if i < len(tc.cmds)-1 {
					require.NoError(t, res.Err)
				}
			}
			require.Equal(t, tc.reject, fsm.CodeOf(res.Err), "%v", res.Err)
			if tc.check != nil {
				tc.check(t, f.State())
			}
		})
	}
}
