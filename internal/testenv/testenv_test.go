package testenv

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder notes how Missing ended the test instead of ending it.
type recorder struct {
	testing.TB
	fatal, skip bool
}

func (r *recorder) Fatal(...any) { r.fatal = true }
func (r *recorder) Skip(...any)  { r.skip = true }

func TestMissing(t *testing.T) {
	t.Setenv("CI", "")
	r := &recorder{TB: t}
	Missing(r, "no nginx")
	require.True(t, r.skip)
	require.False(t, r.fatal)

	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	Missing(r, "no nginx")
	require.True(t, r.fatal)
}
