package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/bench/procluster"
	"potluck/bench/procstat"
	"potluck/internal/freeport"
)

// token is the operator token of the bench cluster (loopback only).
const token = "fleet-bench-operator-token"

// coreNode is one potluck-core process.
type coreNode struct {
	id, dataDir       string
	logPath           string // its output, across restarts
	raft, http, agent string // loopback addresses
	api               *apiclient.Client
	proc              *procluster.Proc
}

// logText is the node's output so far, for the error report: its first MiB.
func (nd *coreNode) logText() string {
	f, err := os.Open(nd.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

// coreCluster is three potluck-core processes on loopback, without a mesh
// (hosts are ready at registration) and with the bench agent listener.
type coreCluster struct {
	bin, dir string
	peers    string
	nodes    []*coreNode
}

func startCluster(ctx context.Context, bin, dir string, n int) (*coreCluster, error) {
	c := &coreCluster{bin: bin, dir: dir}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token+"\n"), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, bin, "ca", "init", "--out", filepath.Join(dir, "ca")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ca init: %w: %s", err, out)
	}
	var peers []string
	for i := range n {
		nd, err := c.newNode(fmt.Sprintf("core%d", i+1))
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, nd)
		peers = append(peers, nd.id+"="+nd.raft)
	}
	c.peers = strings.Join(peers, ",")
	for _, nd := range c.nodes {
		if err := c.start(nd, "--peers", c.peers); err != nil {
			c.stop()
			return nil, err
		}
	}
	return c, nil
}

func (c *coreCluster) newNode(id string) (*coreNode, error) {
	addrs, err := freeport.TCPs(3)
	if err != nil {
		return nil, err
	}
	nd := &coreNode{id: id, dataDir: filepath.Join(c.dir, id), logPath: filepath.Join(c.dir, id+".log"),
		raft: addrs[0], http: addrs[1], agent: addrs[2]}
	nd.api, err = apiclient.New("http://"+nd.http, token, apiclient.WithRetries(60, 500*time.Millisecond),
		apiclient.WithHTTPClient(&http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}))
	return nd, err
}

// start runs nd with the cluster's common flags plus extra.
func (c *coreCluster) start(nd *coreNode, extra ...string) error {
	args := append([]string{"--id", nd.id, "--data-dir", nd.dataDir, "--raft-bind", nd.raft, "--http", nd.http,
		"--cluster-ca", filepath.Join(c.dir, "ca"), "--operator-token-file", filepath.Join(c.dir, "token"),
		"--mesh=false", "--log-level", "warn", "--bench-agent-listen", nd.agent,
		// Heartbeats flow all the time; a host goes down only if the
		// bench starves it, which it then reports.
		"--heartbeat-ttl", "60s"}, extra...)
	nd.proc = procluster.NewProc(nd.id, c.bin, nd.logPath, args...)
	return nd.proc.Start()
}

// stop ends every process (SIGTERM, then SIGKILL after 10 s).
func (c *coreCluster) stop() {
	for _, nd := range c.nodes {
		if nd.proc != nil {
			_ = nd.proc.Stop(10 * time.Second)
		}
	}
}

// leader waits for a node to report itself leader of a healthy group.
func (c *coreCluster) leader(ctx context.Context) (*coreNode, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range c.nodes {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			st, err := nd.api.Status(sctx)
			cancel()
			if err == nil && st.RaftState == "Leader" && len(st.Nodes) >= len(c.nodes) {
				return nd, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	var logs []string
	for _, nd := range c.nodes {
		logs = append(logs, nd.id+": "+nd.logText())
	}
	return nil, fmt.Errorf("no leader within 60 s:\n%s", strings.Join(logs, "\n"))
}

// procSample is a process's CPU time and memory from /proc.
type procSample struct {
	at       time.Time
	cpu      time.Duration // user + system
	rss, hwm int64         // bytes
}

// sampleProc reads /proc/PID/stat and /proc/PID/status.
func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	ps, ok := procstat.ParseStat(stat)
	if !ok {
		return s, errors.New("unreadable /proc stat")
	}
	s.cpu = time.Duration(ps.Ticks) * procstat.Tick
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.rss = kb << 10
		case "VmHWM":
			s.hwm = kb << 10
		}
	}
	return s, nil
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
