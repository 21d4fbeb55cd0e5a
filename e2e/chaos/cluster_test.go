package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/freeport"
)

// operatorToken is the token every node and client of the test uses.
const operatorToken = "chaos-operator-token-0123456789abcdef"

// buildCore builds potluck-core into dir (world-readable: nodes may run
// under their own uid so that partitions can tell their traffic apart).
func buildCore(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "potluck-core")
	args := []string{"build", "-o", bin}
	if os.Getenv("CHAOS_RACE") != "" {
		args = append(args, "-race")
	}
	if out, err := exec.Command(goBin, append(args, "potluck/cmd/potluck-core")...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build potluck-core: %w: %s", err, out)
	}
	return bin, nil
}

// node is one potluck-core process. The process may be killed and started
// again on the same data directory and ports.
type node struct {
	id       string
	httpAddr string
	raftAddr string
	dir      string
	logPath  string
	uid      int // 0: the test's own uid
	args     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// cluster is three nodes bootstrapped together.
type cluster struct {
	bin   string
	dir   string // the run's directory: binary, node data and logs
	nodes []*node
	// keep leaves dir in place after a test that passed (startCluster).
	keep bool
}

// startCluster builds potluck-core from this tree and starts a healthy
// 3-node cluster in a fresh directory named after prefix; uids as for
// newCluster. The nodes are killed when the test ends, and the directory is
// removed unless the test failed or c.keep was set.
func startCluster(t *testing.T, prefix string, uids []int) *cluster {
	t.Helper()
	base, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	// Nodes may run as other uids: they must reach their own directories.
	require.NoError(t, os.Chmod(base, 0o755))
	var c *cluster
	t.Cleanup(func() {
		if t.Failed() || (c != nil && c.keep) {
			t.Logf("kept the run's directory (binary, node data and logs): %s", base)
			return
		}
		os.RemoveAll(base)
	})
	bin, err := buildCore(base)
	require.NoError(t, err)
	c, err = newCluster(bin, base, 3, uids)
	require.NoError(t, err)
	// On any failure: SIGKILL ends paused nodes too.
	t.Cleanup(c.stop)
	require.NoError(t, c.start())
	if err := c.waitHealthy(context.Background(), 30*time.Second); err != nil {
		t.Fatalf("the cluster never became healthy: %v\n%s", err, c.logTails(20))
	}
	return c
}

// newCluster prepares n nodes under base: ports from freeport, a cluster CA,
// the operator token file. uids[i] != 0 runs node i under that uid (root
// only), its files owned by it.
func newCluster(bin, base string, n int, uids []int) (*cluster, error) {
	c := &cluster{bin: bin, dir: base}
	var peers []string
	for i := range n {
		httpAddr, err := freeport.TCP()
		if err != nil {
			return nil, err
		}
		raftAddr, err := freeport.TCP()
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("core%d", i+1)
		nd := &node{id: id, httpAddr: httpAddr, raftAddr: raftAddr, dir: filepath.Join(base, id), logPath: filepath.Join(base, id+".log")}
		if uids != nil {
			nd.uid = uids[i]
		}
		c.nodes = append(c.nodes, nd)
		peers = append(peers, id+"="+raftAddr)
	}
	caDir := filepath.Join(base, "cluster-ca")
	if out, err := exec.Command(bin, "ca", "init", "--out", caDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("potluck-core ca init: %w: %s", err, out)
	}
	for _, nd := range c.nodes {
		if err := os.MkdirAll(filepath.Join(nd.dir, "data"), 0o700); err != nil {
			return nil, fmt.Errorf("node dir: %w", err)
		}
		// Each node gets its own copy of the CA and the token, owned by its uid.
		nodeCA := filepath.Join(nd.dir, "cluster-ca")
		if err := os.MkdirAll(nodeCA, 0o700); err != nil {
			return nil, fmt.Errorf("node CA dir: %w", err)
		}
		files := map[string][]byte{filepath.Join(nd.dir, "operator-token"): []byte(operatorToken + "\n")}
		for _, f := range []string{"ca.crt", "ca.key"} {
			b, err := os.ReadFile(filepath.Join(caDir, f))
			if err != nil {
				return nil, fmt.Errorf("cluster CA: %w", err)
			}
			files[filepath.Join(nodeCA, f)] = b
		}
		for p, b := range files {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				return nil, fmt.Errorf("node files: %w", err)
			}
		}
		if nd.uid != 0 {
			err := filepath.Walk(nd.dir, func(p string, _ os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				return os.Chown(p, nd.uid, nd.uid)
			})
			if err != nil {
				return nil, fmt.Errorf("chown node dir: %w", err)
			}
		}
		nd.args = []string{
			"--id", nd.id, "--data-dir", filepath.Join(nd.dir, "data"),
			"--http", nd.httpAddr, "--raft-bind", nd.raftAddr, "--peers", strings.Join(peers, ","),
			"--operator-token-file", filepath.Join(nd.dir, "operator-token"), "--cluster-ca", nodeCA,
			"--fast-raft", "--mesh=false", "--log-level", "info",
		}
	}
	return c, nil
}

// start runs the node's process (again), its output appended to its log.
func (n *node) start(bin string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("%s is already running", n.id)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", n.id, err)
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(bin, n.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + n.dir}
	// Pdeathsig: a test killed hard takes its nodes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if n.uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(n.uid), Gid: uint32(n.uid)}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", n.id, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	n.cmd, n.done, n.paused = cmd, done, false
	return nil
}

// kill sends SIGKILL (also to a paused process) and waits for it to exit.
func (n *node) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.cmd, n.paused = nil, false
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// signal sends SIGSTOP or SIGCONT to a running process.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return fmt.Errorf("%s is not running", n.id)
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", n.id, sig, err)
	}
	n.paused = sig == syscall.SIGSTOP
	return nil
}

// heal continues a paused node and starts a killed one.
func (n *node) heal(bin string) error {
	n.mu.Lock()
	running, paused := n.cmd != nil, n.paused
	n.mu.Unlock()
	switch {
	case !running:
		return n.start(bin)
	case paused:
		return n.signal(syscall.SIGCONT)
	}
	return nil
}

func (c *cluster) start() error {
	for _, n := range c.nodes {
		if err := n.start(c.bin); err != nil {
			return err
		}
	}
	return nil
}

// stop kills every node (the data stays for a post-mortem).
func (c *cluster) stop() {
	for _, n := range c.nodes {
		n.kill()
	}
}

func (c *cluster) node(id string) *node {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// statusClient reads /v1/status; short timeout, a paused node must not stall
// the nemesis.
var statusClient = &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}

type nodeStatus struct {
	Leader string `json:"leader"`
	Health string `json:"health"`
}

func (n *node) status(ctx context.Context) (nodeStatus, error) {
	var st nodeStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	req.Header.Set("Authorization", "Bearer "+operatorToken)
	resp, err := statusClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s status: %d %s", n.id, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s status: %w", n.id, err)
	}
	return st, nil
}

// leader is the leader most nodes name right now ("" if none).
func (c *cluster) leader(ctx context.Context) string {
	votes := map[string]int{}
	best := ""
	for _, n := range c.nodes {
		st, err := n.status(ctx)
		if err != nil || st.Leader == "" {
			continue
		}
		votes[st.Leader]++
		if votes[st.Leader] > votes[best] {
			best = st.Leader
		}
	}
	return best
}

// waitHealthy waits until every node is up and names the same leader.
func (c *cluster) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		leaders := map[string]bool{}
		last = nil
		for _, n := range c.nodes {
			st, err := n.status(ctx)
			if err == nil && (st.Health != "ok" || st.Leader == "") {
				err = fmt.Errorf("%s: health %q, leader %q", n.id, st.Health, st.Leader)
			}
			if err != nil {
				last = err
				break
			}
			leaders[st.Leader] = true
		}
		if last == nil && len(leaders) == 1 {
			return nil
		}
		if last == nil {
			last = fmt.Errorf("nodes name different leaders: %v", leaders)
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("cluster not healthy after %v", timeout), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTails is the end of every node's log, for a failure report.
func (c *cluster) logTails(lines int) string {
	var b strings.Builder
	for _, n := range c.nodes {
		data, _ := os.ReadFile(n.logPath)
		ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(ls) > lines {
			ls = ls[len(ls)-lines:]
		}
		fmt.Fprintf(&b, "--- %s (%s), last %d lines:\n%s\n", n.id, n.logPath, len(ls), strings.Join(ls, "\n"))
	}
	return b.String()
}
