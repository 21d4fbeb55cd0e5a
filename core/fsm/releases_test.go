package fsm_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/core/fsm"
	"potluck/core/fsm/fsmtest"
)

func deploy(version int, env string, instances ...*fsm.Instance) *fsm.Command {
	return &fsm.Command{Type: fsm.CmdDeployRelease, Name: "site", Release: &fsm.Release{
		Version: version, App: "web", PerInstance: fsm.Resources{MilliCPU: 500, MemoryMB: 256, DiskMB: 10}, ContainerPort: 80,
		Env: map[string]string{"V": env},
	}, Instances: instances}
}

// pushVersions pushes n new versions of app web.
func pushVersions(n int) []*fsm.Command {
	var out []*fsm.Command
	for i := range n {
		out = append(out, &fsm.Command{Type: fsm.CmdPushAppVersion, App: &fsm.App{Name: "web", Image: fmt.Sprintf("x:%d", i+2), ContainerPort: 80}})
	}
	return out
}

func TestReleases(t *testing.T) {
	newInst := func(id, host string, port, release int) *fsm.Instance {
		return &fsm.Instance{ID: id, Installation: "site", HostID: host, Port: port, Release: release}
	}
	tests := []struct {
		name   string
		cmds   []*fsm.Command
		reject fsm.Code // of the last command
		check  func(t *testing.T, st *fsm.State)
	}{{
		name: "a new release starts beside the live one on the same backs",
		cmds: []*fsm.Command{deploy(2, "two", newInst("n1", "h1", 5001, 2), newInst("n2", "h2", 5001, 2))},
		check: func(t *testing.T, st *fsm.State) {
			inst := st.Installations["site"]
			require.Equal(t, 1, inst.LiveRelease())
			require.Equal(t, fsm.ReleaseDeploying, inst.Deploying().Status)
			require.Len(t, st.InstancesOf("site"), 4)
			require.Equal(t, fsm.Resources{MilliCPU: 1000, MemoryMB: 512, DiskMB: 20}, st.Used("h1"))
		},
	}, {
		name:   "two instances of one release on a host are refused",
		cmds:   []*fsm.Command{deploy(2, "two", newInst("n1", "h1", 5001, 2), newInst("n2", "h1", 5002, 2))},
		reject: fsm.CodeConflict,
	}, {
		name:   "one rollout at a time",
		cmds:   []*fsm.Command{deploy(2, "two", newInst("n1", "h1", 5001, 2), newInst("n2", "h2", 5001, 2)), deploy(3, "three", newInst("m1", "h1", 5002, 3), newInst("m2", "h2", 5002, 3))},
		reject: fsm.CodeConflict,
	}, {
		name:   "release numbers follow each other",
		cmds:   []*fsm.Command{deploy(3, "two", newInst("n1", "h1", 5001, 3), newInst("n2", "h2", 5001, 3))},
		reject: fsm.CodeConflict,
	}, {
		name: "promote: the installation takes the release's settings and the old instances drain",
		cmds: []*fsm.Command{
			deploy(2, "two", newInst("n1", "h1", 5001, 2), newInst("n2", "h2", 5001, 2)),
			{Type: fsm.CmdPromoteRelease, Name: "site", Release: &fsm.Release{Version: 2}},
		},
		check: func(t *testing.T, st *fsm.State) {
			inst := st.Installations["site"]
			require.Equal(t, 2, inst.Release)
			require.Equal(t, map[string]string{"V": "two"}, inst.Env)
			r1, _ := inst.ReleaseByVersion(1)
			require.Equal(t, fsm.ReleaseSuperseded, r1.Status)
			r2, _ := inst.ReleaseByVersion(2)
			require.Equal(t, fsm.ReleaseLive, r2.Status)
			require.Equal(t, fsm.InstanceDraining, st.Instances["i1"].State)
			require.Equal(t, fsm.InstanceDraining, st.Instances["i2"].State)
			require.Equal(t, fsm.InstancePending, st.Instances["n1"].State)
		},
	}, {
		name: "fail: the release's instances go, the live release is untouched",
		cmds: []*fsm.Command{
			deploy(2, "two", newInst("n1", "h1", 5001, 2), newInst("n2", "h2", 5001, 2)),
			{Type: fsm.CmdFailRelease, Name: "site", Release: &fsm.Release{Version: 2, Message: "n1: no answer"}},
		},
		check: func(t *testing.T, st *fsm.State) {
			inst := st.Installations["site"]
			require.Equal(t, 1, inst.Release)
			r2, _ := inst.ReleaseByVersion(2)
			require.Equal(t, fsm.ReleaseFailed, r2.Status)
			require.Equal(t, "n1: no answer", r2.Message)
			require.Len(t, st.InstancesOf("site"), 2)
			require.Nil(t, inst.Deploying())
		},
	}, {
		name:   "promote needs a release rolling out",
		cmds:   []*fsm.Command{{Type: fsm.CmdPromoteRelease, Name: "site", Release: &fsm.Release{Version: 2}}},
		reject: fsm.CodeConflict,
	}, {
		name: "a pushed app version becomes the newest and the old one is kept",
		cmds: []*fsm.Command{{Type: fsm.CmdPushAppVersion, App: &fsm.App{Name: "web", Image: "x:2", ContainerPort: 81}}},
		check: func(t *testing.T, st *fsm.State) {
			a := st.Apps["web"]
			require.Equal(t, 2, a.CurrentVersion())
			v1, ok := a.At(1)
			require.True(t, ok)
			require.Equal(t, "x:1", v1.Image)
			v2, _ := a.At(0)
			require.Equal(t, "x:2", v2.Image)
		},
	}, {
		name: "past MaxAppVersions the oldest version no release names is forgotten",
		cmds: pushVersions(fsm.MaxAppVersions),
		check: func(t *testing.T, st *fsm.State) {
			a := st.Apps["web"]
			require.Len(t, a.Versions, fsm.MaxAppVersions)
			_, ok := a.At(1) // site's live release runs it
			require.True(t, ok)
			_, ok = a.At(2)
			require.False(t, ok)
			_, ok = a.At(3)
			require.True(t, ok)
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := fsm.New()
			for _, c := range script() {
				require.NoError(t, fsmtest.Apply(t, f, c).Err)
			}
			for i, c := range tc.cmds {
				res := fsmtest.Apply(t, f, c)
				if i == len(tc.cmds)-1 && tc.reject != "" {
					require.Equal(t, tc.reject, fsm.CodeOf(res.Err), "%v", res.Err)
					return
				}
				require.NoError(t, res.Err)
			}
			tc.check(t, f.State())
		})
	}
}

// TestReleasesOnStateFromBeforeReleases: a snapshot written before releases
// existed restores with each installation's settings as its release 1, and a
// deploy on it works.
func TestReleasesOnStateFromBeforeReleases(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "snapshot-before-releases.json"))
	require.NoError(t, err)
	f := fsmtest.Restore(t, data)
	inst := f.State().Installations["site"]
	require.Empty(t, inst.Releases)
	r1, ok := inst.ReleaseByVersion(0)
	require.True(t, ok)
	require.Equal(t, 1, r1.Version)
	require.Equal(t, inst.Env, r1.Env)
	// back-1 holds site:5000 and blog:5001; the new release goes beside
	// (back-2, pending in the file, becomes ready first).
	require.NoError(t, fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdPlan, Plan: &fsm.Plan{Hosts: []fsm.HostStatusChange{{HostID: "back-2", Status: fsm.HostReady}}}}).Err)
	res := fsmtest.Apply(t, f, &fsm.Command{Type: fsm.CmdDeployRelease, Name: "site", Release: &fsm.Release{
		Version: 2, App: "web", PerInstance: inst.PerInstance, ContainerPort: 80,
	}, Instances: []*fsm.Instance{
		{ID: "new-1", Installation: "site", HostID: "back-1", Port: 5002, Release: 2},
		{ID: "new-2", Installation: "site", HostID: "back-2", Port: 5001, Release: 2},
	}})
	require.NoError(t, res.Err)
	inst = f.State().Installations["site"]
	require.Len(t, inst.Releases, 2)
	require.Equal(t, fsm.ReleaseLive, inst.Releases[0].Status)
}

// TestReleaseCommandsLeaveEarlierStatesAlone: Clone shares an
// installation's releases, so deploy, promote and fail must replace them,
// never change them in place: a state read before stays as it was.
func TestReleaseCommandsLeaveEarlierStatesAlone(t *testing.T) {
	newInst := func(id, host string, release int) *fsm.Instance {
		return &fsm.Instance{ID: id, Installation: "site", HostID: host, Port: 5000 + release, Release: release}
	}
	f := fsm.New()
	for _, c := range script() {
		require.NoError(t, fsmtest.Apply(t, f, c).Err)
	}
	statuses := func(st *fsm.State) []fsm.ReleaseStatus {
		var out []fsm.ReleaseStatus
		for _, r := range st.Installations["site"].Releases {
			out = append(out, r.Status)
		}
		return out
	}
	steps := []struct {
		cmd  *fsm.Command
		want []fsm.ReleaseStatus
	}{
		{deploy(2, "two", newInst("n1", "h1", 2), newInst("n2", "h2", 2)), []fsm.ReleaseStatus{fsm.ReleaseLive, fsm.ReleaseDeploying}},
		{&fsm.Command{Type: fsm.CmdPromoteRelease, Name: "site", Release: &fsm.Release{Version: 2}}, []fsm.ReleaseStatus{fsm.ReleaseSuperseded, fsm.ReleaseLive}},
		{deploy(3, "three", newInst("m1", "h1", 3), newInst("m2", "h2", 3)), []fsm.ReleaseStatus{fsm.ReleaseSuperseded, fsm.ReleaseLive, fsm.ReleaseDeploying}},
		{&fsm.Command{Type: fsm.CmdFailRelease, Name: "site", Release: &fsm.Release{Version: 3, Message: "no"}}, []fsm.ReleaseStatus{fsm.ReleaseSuperseded, fsm.ReleaseLive, fsm.ReleaseFailed}},
	}
	for _, s := range steps {
		before := f.State()
		was := statuses(before)
		require.NoError(t, fsmtest.Apply(t, f, s.cmd).Err, s.cmd.Type)
		require.Equal(t, s.want, statuses(f.State()), s.cmd.Type)
		require.Equal(t, was, statuses(before), "%s changed the state before it", s.cmd.Type)
	}
}

// TestPushAppVersionLeavesEarlierStatesAlone: Clone shares an app's
// versions, so a push (forgetting the oldest past MaxAppVersions included)
// replaces them: a state read before keeps its versions.
func TestPushAppVersionLeavesEarlierStatesAlone(t *testing.T) {
	f := fsm.New()
	for _, c := range script() {
		require.NoError(t, fsmtest.Apply(t, f, c).Err)
	}
	for i, c := range pushVersions(fsm.MaxAppVersions + 1) {
		before := f.State()
		was := append([]fsm.AppVersion(nil), before.Apps["web"].Versions...)
		require.NoError(t, fsmtest.Apply(t, f, c).Err)
		require.Equal(t, was, before.Apps["web"].Versions, "push %d changed the state before it", i+2)
	}
}
