package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/core/api"
	"potluck/internal/freeport"
)

const upgradeToken = "operator-token-upgrade-0123456789"

// procNode is one potluck-core process of a test cluster.
type procNode struct {
	id, dataDir, raft, http string
	api                     *apiclient.Client // to this node, retrying writes as clients do
	cmd                     *exec.Cmd
	exited                  chan error
	reaped                  bool // the test received from exited
	log                     *bytes.Buffer
}

// wait returns whether the process exited within timeout, and how.
func (nd *procNode) wait(timeout time.Duration) (exited bool, err error) {
	select {
	case err := <-nd.exited:
		nd.reaped = true
		return true, err
	case <-time.After(timeout):
		return false, nil
	}
}

// procCluster runs real potluck-core processes on loopback.
type procCluster struct {
	t       *testing.T
	dir     string
	nodes   []*procNode
	peers   string
	tokFile string
}

// buildCore builds potluck-core with a release string of its own.
func buildCore(t *testing.T, release string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "potluck-core-"+release)
	out, err := exec.Command("go", "build", "-ldflags", "-X potluck/internal/version.release="+release, "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// upgradeFrom is the commit TestRollingUpgrade upgrades from: an earlier
// state of main (raft over TLS, the release before this session's work).
const upgradeFrom = "8267742b64b60f9c4910e4098fcf7629063dfc35"

// buildCoreAt builds potluck-core as it was at commit, with a release string
// of its own. A checkout without that commit (a shallow clone) gets this
// commit's build under the old release string instead, and says so: the
// procedure is still followed, only the versions do not differ in code.
func buildCoreAt(t *testing.T, commit, release string) string {
	t.Helper()
	if err := exec.Command("git", "cat-file", "-e", commit+"^{commit}").Run(); err != nil {
		t.Logf("commit %s is not in this checkout (shallow clone?): upgrading from this commit's build as %s", commit, release)
		return buildCore(t, release)
	}
	src, tarball := t.TempDir(), filepath.Join(t.TempDir(), "src.tar")
	archive := exec.Command("git", "archive", "--format=tar", "-o", tarball, commit)
	archive.Dir = "../.." // the repository's root: from here git would archive this directory alone
	out, err := archive.CombinedOutput()
	require.NoError(t, err, "git archive %s: %s", commit, out)
	out, err = exec.Command("tar", "-xf", tarball, "-C", src).CombinedOutput()
	require.NoError(t, err, "%s", out)
	bin := filepath.Join(t.TempDir(), "potluck-core-"+release)
	build := exec.Command("go", "build", "-ldflags", "-X potluck/internal/version.release="+release, "-o", bin, "./cmd/potluck-core")
	build.Dir = src
	out, err = build.CombinedOutput()
	require.NoError(t, err, "build potluck-core at %s: %s", commit, out)
	return bin
}

// freePorts returns n loopback ports below the ephemeral range, held until
// all are chosen.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := freeport.TCPs(n)
	require.NoError(t, err)
	return addrs
}

func newProcCluster(t *testing.T, bin string, n int) *procCluster {
	t.Helper()
	dir := t.TempDir()
	c := &procCluster{t: t, dir: dir, tokFile: filepath.Join(dir, "token")}
	require.NoError(t, os.WriteFile(c.tokFile, []byte(upgradeToken+"\n"), 0o600))
	out, err := exec.Command(bin, "ca", "init", "--out", filepath.Join(dir, "ca")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	addrs := freePorts(t, 2*n)
	var peers []string
	for i := range n {
		nd := &procNode{id: fmt.Sprintf("core%d", i+1), dataDir: filepath.Join(dir, fmt.Sprintf("core%d", i+1)), raft: addrs[2*i], http: addrs[2*i+1]}
		// Writes are retried with the same request id through elections
		// (503) and restarts (lost connections) for up to 30 s.
		nd.api, err = apiclient.New("http://"+nd.http, upgradeToken, apiclient.WithRetries(60, 500*time.Millisecond),
			apiclient.WithHTTPClient(&http.Client{Timeout: 10 * time.Second}))
		require.NoError(t, err)
		c.nodes = append(c.nodes, nd)
		peers = append(peers, nd.id+"="+nd.raft)
	}
	c.peers = strings.Join(peers, ",")
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.cmd != nil && !nd.reaped {
				_ = nd.cmd.Process.Kill()
				<-nd.exited
			}
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				if nd.log != nil {
					t.Logf("%s log:\n%s", nd.id, nd.log.String())
				}
			}
		}
	})
	for i := range c.nodes {
		c.start(i, bin)
	}
	return c
}

func (c *procCluster) start(i int, bin string) {
	nd := c.nodes[i]
	nd.log = &bytes.Buffer{}
	nd.cmd = exec.Command(bin, "--id", nd.id, "--data-dir", nd.dataDir, "--raft-bind", nd.raft, "--http", nd.http,
		"--peers", c.peers, "--cluster-ca", filepath.Join(c.dir, "ca"), "--operator-token-file", c.tokFile,
		"--mesh=false", "--fast-raft", "--log-level", "warn")
	nd.cmd.Stdout, nd.cmd.Stderr = nd.log, nd.log
	require.NoError(c.t, nd.cmd.Start())
	nd.exited, nd.reaped = make(chan error, 1), false
	go func() { nd.exited <- nd.cmd.Wait() }()
}

// stop sends SIGTERM, as an init system does, and waits for a clean exit.
func (c *procCluster) stop(i int) {
	nd := c.nodes[i]
	require.NoError(c.t, nd.cmd.Process.Signal(syscall.SIGTERM))
	ok, err := nd.wait(20 * time.Second)
	require.True(c.t, ok, "%s did not stop", nd.id)
	require.NoError(c.t, err, "%s exits cleanly on SIGTERM", nd.id)
}

// status is node i's GET /v1/status; false when it does not answer 200.
func (c *procCluster) status(i int) (*apiclient.Status, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.nodes[i].api.Status(ctx)
	return st, err == nil
}

// waitVersions waits until node i reports a healthy group in which every
// node published the release in want (by id).
func (c *procCluster) waitVersions(i int, want map[string]string) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		st, ok := c.status(i)
		if !ok || st.Health != api.HealthOK || len(st.Nodes) != len(c.nodes) {
			return false
		}
		for _, n := range st.Nodes {
			if n.Build == nil || n.Build.Version != want[n.ID] {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "versions %v never reported by %s", want, c.nodes[i].id)
}

func (c *procCluster) leader() int {
	c.t.Helper()
	var l int
	require.Eventually(c.t, func() bool {
		for i := range c.nodes {
			if st, ok := c.status(i); ok && st.RaftState == "Leader" {
				l = i
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond)
	return l
}

// write creates an app through node i, retrying 503s (leader elections)
// with the same request id, as clients do.
func (c *procCluster) write(i int, name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.nodes[i].api.CreateImageApp(ctx, name, "registry.example/"+name+":1", 8080)
	require.NoError(c.t, err, "write %s through %s", name, c.nodes[i].id)
}

// holdsApps waits until node i's own copy of the state (a stale read) has
// every app of names.
func (c *procCluster) holdsApps(i int, names ...string) {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		apps, _, err := c.nodes[i].api.Apps(ctx, &apiclient.Query{Stale: true})
		if err != nil {
			return false
		}
		have := map[string]bool{}
		for _, a := range apps {
			have[a.Name] = true
		}
		for _, n := range names {
			if !have[n] {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "apps %v on %s", names, c.nodes[i].id)
}

// TestRollingUpgrade follows docs/operations.md's rolling upgrade on three
// real processes: potluck-core built at an earlier commit (upgradeFrom)
// running, then this commit's build; each follower, then the leader, is
// stopped with SIGTERM and started on the new binary with the same data
// directory; after each step `GET /v1/status` shows which node runs which
// version and the cluster takes a write; at the end every node runs the new
// one and holds every write (issue 11, version).
func TestRollingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries and runs three processes")
	}
	const oldRel, newRel = "v1.0.0-old", "v1.1.0-new"
	oldBin, newBin := buildCoreAt(t, upgradeFrom, oldRel), buildCore(t, newRel)
	c := newProcCluster(t, oldBin, 3)
	want := map[string]string{"core1": oldRel, "core2": oldRel, "core3": oldRel}
	c.waitVersions(0, want)
	c.write(0, "before")

	l := c.leader()
	order := []int{}
	for i := range c.nodes {
		if i != l {
			order = append(order, i)
		}
	}
	order = append(order, l) // the leader last: one election, not three
	for step, i := range order {
		c.stop(i)
		c.start(i, newBin)
		want[c.nodes[i].id] = newRel
		c.waitVersions(i, want)
		c.write((i+1)%len(c.nodes), fmt.Sprintf("step%d", step))
	}
	for i := range c.nodes {
		st, ok := c.status(i)
		require.True(t, ok)
		require.Equal(t, newRel, st.Build.Version, "node %d answers with its own build", i)
	}
	for i := range c.nodes {
		c.holdsApps(i, "before", "step0", "step1", "step2")
	}
}

// TestRemovedNodeProcessExits: `DELETE /v1/cluster/voters/ID` (what `potluck
// cluster remove` sends) makes the removed node's potluck-core exit with
// status 0 and say why, and its data directory refuses to start again.
func TestRemovedNodeProcessExits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three processes")
	}
	bin := buildCore(t, "v1.0.0-test")
	c := newProcCluster(t, bin, 3)
	c.waitVersions(0, map[string]string{"core1": "v1.0.0-test", "core2": "v1.0.0-test", "core3": "v1.0.0-test"})
	l := c.leader()
	gone := (l + 1) % len(c.nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, c.nodes[l].api.RemoveMember(ctx, c.nodes[gone].id))
	ok, err := c.nodes[gone].wait(20 * time.Second)
	require.True(t, ok, "the removed node did not exit")
	require.NoError(t, err, "exit status 0")
	require.Contains(t, c.nodes[gone].log.String(), "this node was removed from the cluster; exiting")

	c.start(gone, bin)
	ok, err = c.nodes[gone].wait(20 * time.Second)
	require.True(t, ok, "a removed node's data directory started again")
	require.Error(t, err)
	require.Contains(t, c.nodes[gone].log.String(), "was removed from its cluster")
	c.write(l, "after-removal")
}
