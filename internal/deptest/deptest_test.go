package deptest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// recorder captures Errorf calls so a failing check can be asserted.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }

func TestForbidCatchesADependency(t *testing.T) {
	r := &recorder{TB: t}
	Forbid(r, "potluck/core/fsm", "github.com/hashicorp/raft")
	require.True(t, r.failed, "core/fsm depends on raft, so Forbid must fail")

	r = &recorder{TB: t}
	Forbid(r, "potluck/agentproto", ControlPlane...)
	require.False(t, r.failed)
}

func TestOnlyStandard(t *testing.T) {
	r := &recorder{TB: t}
	OnlyStandard(r, "potluck/agent")
	require.True(t, r.failed, "agent imports meshnet")

	r = &recorder{TB: t}
	OnlyStandard(r, "potluck/agentproto")
	require.False(t, r.failed)
}
