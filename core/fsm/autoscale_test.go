package fsm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

// autoscaleGolden sets blog's autoscaling policy and records one operation
// for the golden snapshot.
func autoscaleGolden() []goldenEntry {
	at := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)
	return []goldenEntry{
		{cmd: &fsm.Command{Type: fsm.CmdSetAutoscale, RequestID: "req-blog-autoscale", Name: "blog", Autoscale: &fsm.Autoscale{
			Enabled: true, Policy: fsm.AutoscaleCombined, Min: 1, Max: 4, CPUTarget: 0.75, Interval: 25 * time.Minute}}},
		{cmd: &fsm.Command{Type: fsm.CmdAutoscale, Name: "blog", Plan: &fsm.Plan{
			Update:        []fsm.InstanceUpdate{{ID: "inst-6", State: fsm.InstanceDraining, Message: "autoscaled in"}},
			Installations: []fsm.InstallationUpdate{{Name: "blog", Fronts: 2, Backs: 1, FrontHosts: []string{"front-1", "front-2"}}},
		}, AutoscaleEvent: &fsm.AutoscaleEvent{At: at, From: 2, To: 1, Source: "reactive", Reason: "CPU 4 % < 10 % over 1 min: −1 instance"}}},
		{cmd: &fsm.Command{Type: fsm.CmdSetAutoscale, Name: "blog", Autoscale: &fsm.Autoscale{Min: 3, Max: 2, CPUTarget: 0.75}}, reject: fsm.CodeInvalid},
	}
}

func TestAutoscaleSettingsAndOperations(t *testing.T) {
	f := fsm.New()
	apply := func(c *fsm.Command) error { return fsmtest.Apply(t, f, c).Err }
	require.NoError(t, apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: "b1", Name: "b1", Role: fsm.RoleBack, PublicKey: "k1", TokenID: fsm.OperatorTokenID, Status: fsm.HostReady,
		Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 4096, DiskMB: 4096}}}))
	require.NoError(t, apply(&fsm.Command{Type: fsm.CmdRegisterHost, Host: &fsm.Host{ID: "f1", Name: "f1", Role: fsm.RoleFront, PublicKey: "k2", TokenID: fsm.OperatorTokenID, Status: fsm.HostReady,
		Capacity: fsm.Resources{MilliCPU: 4000, MemoryMB: 4096, DiskMB: 4096}}}))
	require.NoError(t, apply(&fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: "web", Image: "web:1", ContainerPort: 80}}))
	require.NoError(t, apply(&fsm.Command{Type: fsm.CmdCreateInstallation, Installation: &fsm.Installation{
		Name: "site", App: "web", Fronts: 1, Backs: 1, Domain: "site.test", ContainerPort: 80, FrontHosts: []string{"f1"},
		PerInstance: fsm.Resources{MilliCPU: 100, MemoryMB: 64, DiskMB: 64}},
		Instances: []*fsm.Instance{{ID: "i1", Installation: "site", HostID: "b1", Port: 5000}}}))

	op := func(at time.Time) *fsm.Command {
		return &fsm.Command{Type: fsm.CmdAutoscale, Name: "site", Plan: &fsm.Plan{
			Installations: []fsm.InstallationUpdate{{Name: "site", Fronts: 1, Backs: 1, FrontHosts: []string{"f1"}}}},
			AutoscaleEvent: &fsm.AutoscaleEvent{At: at, From: 1, To: 1, Source: "bounds", Reason: "test"}}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, fsm.CodeConflict, fsm.CodeOf(apply(op(t0))), "no operation while autoscaling is off")

	bad := []fsm.Autoscale{
		{Min: 0, Max: 2, CPUTarget: 0.5},
		{Min: 3, Max: 2, CPUTarget: 0.5},
		{Min: 1, Max: fsm.MaxAutoscaleCount + 1, CPUTarget: 0.5},
		{Min: 1, Max: 2, CPUTarget: 0.05},
		{Min: 1, Max: 2, CPUTarget: 1.5},
		{Min: 1, Max: 2, CPUTarget: 0.5, Interval: -time.Second},
		{Min: 1, Max: 2, CPUTarget: 0.5, Policy: "magic"},
	}
	for _, a := range bad {
		require.Equal(t, fsm.CodeInvalid, fsm.CodeOf(apply(&fsm.Command{Type: fsm.CmdSetAutoscale, Name: "site", Autoscale: &a})), "%+v", a)
	}
	require.NoError(t, apply(&fsm.Command{Type: fsm.CmdSetAutoscale, Name: "site", Autoscale: &fsm.Autoscale{Enabled: true, Min: 1, Max: 3, CPUTarget: 0.5}}))
	for i := range fsm.MaxAutoscaleEvents + 5 {
		require.NoError(t, apply(op(t0.Add(time.Duration(i)*time.Minute))))
	}
	a := f.State().Installations["site"].Autoscale
	require.Len(t, a.Events, fsm.MaxAutoscaleEvents, "the record is bounded")
	require.Equal(t, t0.Add(time.Duration(fsm.MaxAutoscaleEvents+4)*time.Minute), a.LastOperation)

	// New settings keep the record and the time of the last operation.
	require.NoError(t, apply(&fsm.Command{Type: fsm.CmdSetAutoscale, Name: "site", Autoscale: &fsm.Autoscale{Min: 2, Max: 5, CPUTarget: 0.6}}))
	a = f.State().Installations["site"].Autoscale
	require.False(t, a.Enabled)
	require.Equal(t, 2, a.Min)
	require.Len(t, a.Events, fsm.MaxAutoscaleEvents)
	require.False(t, a.LastOperation.IsZero())
}
