package fsm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// TestRegisterHostTokens: a host registered with the operator token is
// accepted (the API records it as OperatorTokenID); scoped tokens and core
// nodes' keys are not.
func TestRegisterHostTokens(t *testing.T) {
	f := fsm.New()
	for _, c := range []*fsm.Command{
		{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: "abc"},
		{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "join", Hash: "h1"}},
		{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "owner", Hash: "h2", Scope: fsm.ScopeAppOwner, Apps: []string{"web"}}},
		{Type: fsm.CmdCreateToken, Token: &fsm.JoinToken{ID: "reader", Hash: "h3", Scope: fsm.ScopeReadOnly}},
		{Type: fsm.CmdUpsertCoreNode, CoreNode: &fsm.CoreNode{ID: "core1", PublicKey: "core-key"}},
	} {
		require.NoError(t, fsmtest.Apply(t, f, c).Err)
	}
	host := func(id, key, token string) *fsm.Command {
		return &fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: id, Name: id, Role: fsm.RoleBack, PublicKey: key, TokenID: token,
			Capacity: fsm.Resources{MilliCPU: 1000, MemoryMB: 1024, DiskMB: 1024}}}
	}
	tests := []struct {
		name string
		cmd  *fsm.Command
		code fsm.Code
		err  string
	}{
		{"join token", host("h1", "k1", "join"), "", ""},
		{"operator", host("h2", "k2", fsm.OperatorTokenID), "", ""},
		{"app-owner token", host("h3", "k3", "owner"), fsm.CodeInvalid, "join token is not valid"},
		{"read-only token", host("h4", "k4", "reader"), fsm.CodeInvalid, "join token is not valid"},
		{"a core node's key", host("h5", "core-key", "join"), fsm.CodeConflict, "core node core1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := fsmtest.Apply(t, f, tc.cmd)
			require.Equal(t, tc.code, fsm.CodeOf(res.Err), "%v", res.Err)
			if tc.err != "" {
				require.ErrorContains(t, res.Err, tc.err)
			}
		})
	}
}

func TestTokenScopes(t *testing.T) {
	tests := []struct {
		name string
		tok  fsm.JoinToken
		err  string
	}{
		{"join", fsm.JoinToken{ID: "a", Hash: "h"}, ""},
		{"app-owner", fsm.JoinToken{ID: "b", Hash: "h", Scope: fsm.ScopeAppOwner, Installations: []string{"site"}}, ""},
		{"app-owner of nothing", fsm.JoinToken{ID: "c", Hash: "h", Scope: fsm.ScopeAppOwner}, "names at least one app"},
		{"read-only with apps", fsm.JoinToken{ID: "d", Hash: "h", Scope: fsm.ScopeReadOnly, Apps: []string{"web"}}, "only app-owner tokens"},
		{"unknown scope", fsm.JoinToken{ID: "e", Hash: "h", Scope: "admin"}, `unknown token scope "admin"`},
	}
	f := fsm.New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdCreateToken, Token: &tc.tok})
			if tc.err == "" {
				require.NoError(t, res.Err)
				return
			}
			require.ErrorContains(t, res.Err, tc.err)
		})
	}
}

func TestRotateOperatorToken(t *testing.T) {
	f := fsm.New()
	require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdSetOperatorToken, OperatorTokenHash: "old"}).Err)
	res := fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdRotateOperatorToken, OperatorTokenHash: "new", Grace: time.Hour})
	require.NoError(t, res.Err)
	st := f.State()
	require.Equal(t, "new", st.OperatorTokenHash)
	require.Equal(t, "old", st.PreviousOperatorTokenHash)
	require.Equal(t, fsmtest.TimeAt(res.Index).Add(time.Hour), *st.PreviousOperatorUntil)

	require.Equal(t, fsm.CodeConflict, fsm.CodeOf(fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdRotateOperatorToken, OperatorTokenHash: "new"}).Err))
	require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdRotateOperatorToken, OperatorTokenHash: "newer"}).Err)
	st = f.State()
	require.Empty(t, st.PreviousOperatorTokenHash, "no grace: the old token stops at once")
	require.Nil(t, st.PreviousOperatorUntil)
}

func TestSchedulableAndNeed(t *testing.T) {
	h := &fsm.Host{Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 4096, DiskMB: 10000}}
	require.Equal(t, h.Capacity, h.Schedulable(), "older agents: declared")
	h.Measured = &fsm.Resources{MilliCPU: 2000, MemoryMB: 8192, DiskMB: 500}
	require.Equal(t, fsm.Resources{MilliCPU: 2000, MemoryMB: 4096, DiskMB: 500}, h.Schedulable())

	st := fsm.NewState()
	st.Apps["big"] = &fsm.App{Name: "big", UncompressedSize: 300<<20 + 1}
	st.Apps["ref"] = &fsm.App{Name: "ref"}
	per := fsm.Resources{MilliCPU: 100, MemoryMB: 64, DiskMB: 100}
	require.Equal(t, int64(301), st.Need(&fsm.Installation{App: "big", PerInstance: per}).DiskMB)
	require.Equal(t, int64(100), st.Need(&fsm.Installation{App: "ref", PerInstance: per}).DiskMB)
	per.DiskMB = 1000
	require.Equal(t, int64(1000), st.Need(&fsm.Installation{App: "big", PerInstance: per}).DiskMB)
}
