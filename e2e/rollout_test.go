package e2e

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/internal/dockertest"
	"potluck/internal/localcluster"
)

// releaseStatus is the status and message of the installation's release
// version ("" for no such release).
func releaseStatus(v apiclient.Installation, version int) string {
	for _, r := range v.Releases {
		if r.Version == version {
			return r.Status + " " + r.Message
		}
	}
	return ""
}

// TestRollingUpdate: a new release rolls out under a client loop through a
// real Front with zero failed requests, and a release that never gets
// healthy fails while the live one keeps serving, again with zero failures.
func TestRollingUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a minute or two with Docker")
	}
	tarball := dockertest.SampleImage(t) // skips without a Docker Engine

	s := newSystem(t, 1, 10*time.Second)
	s.startFront()
	dirs := backDirs(t, 2)
	s.backs = append(s.backs, s.startBack(0, dirs[0]), s.startBack(1, dirs[1]))
	s.waitReady("front1", "back1", "back2")

	const site = "roll.e2e.test"
	require.NoError(t, s.c.PushTarball(t.Context(), "roll", tarball, 8080))
	require.Equal(t, 201, s.api(http.MethodPost, "/v1/installations", map[string]any{
		"name": "roll", "app": "roll", "fronts": 1, "backs": 2, "domain": site,
		"cpus": 0.25, "memory_mb": 64, "disk_mb": 64, "env": map[string]string{"RELEASE": "1"},
	}, nil))
	require.Eventually(t, func() bool { return len(s.runningOn("roll")) == 2 }, 90*time.Second, 250*time.Millisecond, "instances never ran")
	require.Eventually(t, func() bool {
		code, _, _, err := s.get(site)
		return err == nil && code == 200
	}, 30*time.Second, 50*time.Millisecond, "the Front never served the installation")
	oldIDs := map[string]bool{}
	for _, in := range s.installation("roll").Instances {
		oldIDs[in.ID] = true
	}

	t.Run("a new release rolls out with zero failed requests", func(t *testing.T) {
		load := s.startLoad(site, 20000)
		time.Sleep(500 * time.Millisecond)
		start := time.Now()
		require.Equal(t, 202, s.api(http.MethodPost, "/v1/installations/roll/releases", map[string]any{
			"env": map[string]string{"RELEASE": "2"},
		}, nil))
		require.Eventually(t, func() bool {
			v := s.installation("roll")
			if v.Release != 2 || len(v.Instances) != 2 {
				return false
			}
			for _, in := range v.Instances {
				if in.Release != 2 || in.State != "running" {
					return false
				}
			}
			return true
		}, 120*time.Second, 250*time.Millisecond, "release 2 never replaced release 1: %+v", s.installation("roll"))
		t.Logf("release 2 live and release 1 drained and removed %.1fs after the deploy", time.Since(start).Seconds())
		time.Sleep(time.Second)
		ok, fail, failures := load.finish()
		t.Logf("client loop: %d requests ok, %d failed", ok, fail)
		require.Zero(t, fail, "failed requests during the rollout: %v", failures)
		// The loop ran through the rollout (a loaded machine manages a few
		// requests a second, a quiet one hundreds).
		require.Greater(t, ok, 20)
		for range 10 {
			code, inst, _, err := s.get(site)
			require.NoError(t, err)
			require.Equal(t, 200, code)
			require.False(t, oldIDs[inst], "served by %s of release 1", inst)
		}
	})

	t.Run("logs of every instance come through the core from the Backs", func(t *testing.T) {
		client, err := apiclient.New(s.c.CoreURLs()[0], localcluster.DefaultOperatorToken)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, client.Logs(t.Context(), "roll", apiclient.LogQuery{Tail: 5}, &buf))
		v := s.installation("roll")
		for _, in := range v.Instances {
			require.Contains(t, buf.String(), in.ID+" 20", "a line of %s with its timestamp:\n%s", in.ID, buf.String())
		}
		require.Contains(t, buf.String(), "serving")

		// Following: the stream stays open until the client stops it, with
		// the chosen instance's lines only.
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		var follow bytes.Buffer
		require.NoError(t, client.Logs(ctx, "roll", apiclient.LogQuery{Follow: true, Instance: v.Instances[0].ID, Tail: 1}, &follow))
		require.Contains(t, follow.String(), v.Instances[0].ID+" ")
		require.NotContains(t, follow.String(), v.Instances[1].ID)
	})

	t.Run("a release that never gets healthy fails; the live one keeps serving", func(t *testing.T) {
		load := s.startLoad(site, 20000)
		time.Sleep(300 * time.Millisecond)
		// Nothing listens on 9999 in the sample app.
		require.Equal(t, 202, s.api(http.MethodPost, "/v1/installations/roll/releases", map[string]any{
			"container_port": 9999,
		}, nil))
		start := time.Now()
		require.Eventually(t, func() bool {
			return releaseStatus(s.installation("roll"), 3) != "deploying "
		}, 120*time.Second, 250*time.Millisecond)
		t.Logf("release 3 failed %.1fs after the deploy", time.Since(start).Seconds())
		v := s.installation("roll")
		// The image exposes 8080: the Back says so at once instead of
		// waiting out the whole grace.
		require.Contains(t, releaseStatus(v, 3), "failed instance")
		require.Contains(t, releaseStatus(v, 3), "the image exposes 8080, not 9999: is the container port (--port) right?")
		require.Equal(t, 2, v.Release)
		time.Sleep(time.Second)
		ok, fail, failures := load.finish()
		t.Logf("client loop: %d requests ok, %d failed; release 3: %s", ok, fail, releaseStatus(v, 3))
		require.Zero(t, fail, "failed requests while release 3 failed: %v", failures)
		require.Len(t, v.Instances, 2)
	})

	t.Run("a release whose app exits fails at once with its last output", func(t *testing.T) {
		start := time.Now()
		require.Equal(t, 202, s.api(http.MethodPost, "/v1/installations/roll/releases", map[string]any{
			"env": map[string]string{"APP_LISTEN": ":99999"},
		}, nil))
		require.Eventually(t, func() bool {
			return releaseStatus(s.installation("roll"), 4) != "deploying "
		}, 120*time.Second, 250*time.Millisecond)
		v := s.installation("roll")
		t.Logf("release 4 failed %.1fs after the deploy: %s", time.Since(start).Seconds(), releaseStatus(v, 4))
		require.Contains(t, releaseStatus(v, 4), "the container exited with code 1 before answering on port 8080")
		require.Contains(t, releaseStatus(v, 4), "; last output: ")
		require.Contains(t, releaseStatus(v, 4), "app: listen tcp: address 99999: invalid port")
		require.Equal(t, 2, v.Release)
	})
}
