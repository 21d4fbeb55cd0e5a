package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient/apitest"
)

// TestDeployWaits: deploy waits for the instances, printing their progress,
// exits 0 once they run and 1 with the reason when one fails; the same for
// a release, whose failure leaves the live one serving.
func TestDeployWaits(t *testing.T) {
	core, vars, tarball := helloPushed(t)

	// The Back's part, played by the test: report every instance of
	// release want in state, once placed.
	play := func(release int, state string) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for ctx.Err() == nil {
				in, _, err := core.Client.Installation(ctx, "hello", nil)
				if err == nil {
					states := map[string]map[string]string{}
					for _, i := range in.Instances {
						if max(i.Release, 1) == release && i.State == "pending" {
							if states[i.HostID] == nil {
								states[i.HostID] = map[string]string{}
							}
							states[i.HostID][i.ID] = state
						}
					}
					for host, s := range states {
						if err := core.ReportInstances(ctx, host, "from the test", s); err != nil {
							t.Errorf("playing the Back: %v", err)
						}
					}
					if len(states) > 0 {
						return
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}

	play(1, "running")
	r := potluck(t, vars, false, "deploy", "--app", "hello", "--domain", "hello.example.com", "--memory", "64MiB")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "installation hello created")
	require.Contains(t, r.stdout, "(release 1): pending")
	require.Contains(t, r.stdout, "(release 1): running")
	require.Contains(t, r.stdout, "serving on 1 instance(s): http://hello.example.com/")

	play(2, "failed")
	r = potluck(t, vars, false, "deploy", "--name", "hello", "--port", "9999")
	require.Equal(t, 1, r.code, r.stdout)
	require.Contains(t, r.stdout, "release 2 (hello v1) rolling out beside release 1")
	oneLine(t, r)
	require.Contains(t, r.stderr, "release 2 failed: instance ")
	require.Contains(t, r.stderr, "failed: from the test; release 1 keeps serving")

	r = potluck(t, vars, false, "releases", "hello")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "failed")
	require.Contains(t, r.stdout, "9999")

	// A second push is version 2; apps show lists the versions kept.
	r = potluck(t, vars, false, "apps", "push", tarball, "--name", "hello", "--port", "8080")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "pushed hello version 2")
	require.Contains(t, r.stdout, "roll it out with: potluck deploy --name hello")
	r = potluck(t, vars, false, "apps", "show", "hello")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "versions kept:")
	require.Contains(t, r.stdout, "v2")
	require.Contains(t, r.stdout, "v1")

	// Logs: this core has no mesh to reach Backs with; each instance says so.
	r = potluck(t, vars, false, "logs", "hello", "--tail", "5")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "[potluck] logs unavailable from b1")
	r = potluck(t, vars, false, "logs", "hello", "--since", "yesterday")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "since must be a duration such as 10m or an RFC 3339 time (HTTP 400)")

	r = potluck(t, vars, false, "deploy", "--name", "hello", "--wait", "300ms")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "not serving after 300ms (--wait); the core goes on: potluck installations show hello")
}

// helloPushed starts a core with a Front and a Back and pushes the app
// hello to it; it returns the core, the CLI's environment for it and the
// app's tarball.
func helloPushed(t *testing.T) (core *apitest.Core, vars map[string]string, tarball string) {
	t.Helper()
	core = apitest.Start(t)
	core.RegisterHost(t, "f1", "front", 1, 512)
	core.RegisterHost(t, "b1", "back", 2, 2048)
	tarball = filepath.Join(t.TempDir(), "hello.tar")
	require.NoError(t, os.WriteFile(tarball, apitest.DockerSaveTar(t, "hello:1", 10_000), 0o644))
	vars = map[string]string{"POTLUCK_ADDR": core.URL, "POTLUCK_TOKEN": apitest.Token}
	require.Equal(t, 0, potluck(t, vars, false, "apps", "push", tarball, "--name", "hello", "--port", "8080").code)
	return core, vars, tarball
}
