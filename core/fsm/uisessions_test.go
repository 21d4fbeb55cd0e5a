package fsm_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

func sessionHash(i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("session-", i)))
	return hex.EncodeToString(sum[:])
}

func TestUISessionCommands(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	create := func(i int, now time.Time, ttl time.Duration) *fsm.Command {
		return &fsm.Command{Type: fsm.CmdCreateUISession, Time: now, UISession: &fsm.UISession{
			Hash: sessionHash(i), Sealed: []byte("sealed"), TokenID: fsm.OperatorTokenID, TokenHash: "h", ExpiresAt: now.Add(ttl)}}
	}
	tests := []struct {
		name   string
		cmd    *fsm.Command
		reject fsm.Code
	}{
		{"no session", &fsm.Command{Type: fsm.CmdCreateUISession, Time: at}, fsm.CodeInvalid},
		{"hash not hex sha256", &fsm.Command{Type: fsm.CmdCreateUISession, Time: at, UISession: &fsm.UISession{
			Hash: "the-session-id-itself", Sealed: []byte("x"), TokenID: "operator", TokenHash: "h", ExpiresAt: at.Add(time.Hour)}}, fsm.CodeInvalid},
		{"upper-case hash", &fsm.Command{Type: fsm.CmdCreateUISession, Time: at, UISession: &fsm.UISession{
			Hash: "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", Sealed: []byte("x"), TokenID: "operator", TokenHash: "h", ExpiresAt: at.Add(time.Hour)}}, fsm.CodeInvalid},
		{"nothing sealed", &fsm.Command{Type: fsm.CmdCreateUISession, Time: at, UISession: &fsm.UISession{
			Hash: sessionHash(1), TokenID: "operator", TokenHash: "h", ExpiresAt: at.Add(time.Hour)}}, fsm.CodeInvalid},
		{"sealed too large", &fsm.Command{Type: fsm.CmdCreateUISession, Time: at, UISession: &fsm.UISession{
			Hash: sessionHash(1), Sealed: make([]byte, fsm.MaxUISessionSealed+1), TokenID: "operator", TokenHash: "h", ExpiresAt: at.Add(time.Hour)}}, fsm.CodeInvalid},
		{"no token id", &fsm.Command{Type: fsm.CmdCreateUISession, Time: at, UISession: &fsm.UISession{
			Hash: sessionHash(1), Sealed: []byte("x"), TokenHash: "h", ExpiresAt: at.Add(time.Hour)}}, fsm.CodeInvalid},
		{"no token hash", &fsm.Command{Type: fsm.CmdCreateUISession, Time: at, UISession: &fsm.UISession{
			Hash: sessionHash(1), Sealed: []byte("x"), TokenID: "operator", ExpiresAt: at.Add(time.Hour)}}, fsm.CodeInvalid},
		{"already expired", create(1, at, 0), fsm.CodeInvalid},
		{"delete with a bad hash", &fsm.Command{Type: fsm.CmdDeleteUISession, Time: at, Name: "x"}, fsm.CodeInvalid},
		{"delete of an unknown session", &fsm.Command{Type: fsm.CmdDeleteUISession, Time: at, Name: sessionHash(9)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fsm.New()
			res := fsmtest.Apply(t, f, tt.cmd)
			require.Equal(t, tt.reject, fsm.CodeOf(res.Err), "%v", res.Err)
			require.Empty(t, f.State().UISessions)
		})
	}

	t.Run("create, conflict, expiry, logout", func(t *testing.T) {
		f := fsm.New()
		require.NoError(t, fsmtest.Apply(t, f, create(1, at, time.Hour)).Err)
		before := f.State()
		require.Equal(t, fsm.CodeConflict, fsm.CodeOf(fsmtest.Apply(t, f, create(1, at, time.Hour)).Err))
		u := f.State().UISession(sessionHash(1), at.Add(time.Minute))
		require.NotNil(t, u)
		require.Equal(t, at, u.CreatedAt)
		require.Nil(t, f.State().UISession(sessionHash(1), at.Add(time.Hour)), "expired")

		// A login after the first expired drops it from the state.
		require.NoError(t, fsmtest.Apply(t, f, create(2, at.Add(2*time.Hour), time.Hour)).Err)
		require.NotContains(t, f.State().UISessions, sessionHash(1))
		require.Contains(t, before.UISessions, sessionHash(1), "a published state never changes")

		require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdDeleteUISession, Name: sessionHash(2)}).Err)
		require.Empty(t, f.State().UISessions)
	})

	t.Run("bounded: the session closest to expiry goes", func(t *testing.T) {
		f := fsm.New()
		for i := range fsm.MaxUISessions {
			// Session 0 expires last, session 1 first.
			ttl := time.Duration(fsm.MaxUISessions-i) * time.Minute
			if i == 0 {
				ttl = 48 * time.Hour
			}
			require.NoError(t, fsmtest.Apply(t, f, create(i, at, ttl)).Err)
		}
		require.Len(t, f.State().UISessions, fsm.MaxUISessions)
		require.NoError(t, fsmtest.Apply(t, f, create(fsm.MaxUISessions, at, time.Hour)).Err)
		st := f.State()
		require.Len(t, st.UISessions, fsm.MaxUISessions)
		require.NotContains(t, st.UISessions, sessionHash(fsm.MaxUISessions-1), "closest to expiry")
		require.Contains(t, st.UISessions, sessionHash(0))
		require.Contains(t, st.UISessions, sessionHash(fsm.MaxUISessions))
	})
}
