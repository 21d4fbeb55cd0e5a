package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"potluck/apiclient"
	"potluck/bench/procstat"
	"potluck/internal/freeport"
)

// token is the operator token of the bench cluster (loopback only).
const token = "fleet-bench-operator-token"

// coreNode is one potluck-core process.
type coreNode struct {
	id, dataDir       string
	raft, http, agent string // loopback addresses
	api               *apiclient.Client
	cmd               *exec.Cmd
	log               *lockedBuffer
	exited            chan error
}

// coreCluster is three potluck-core processes on loopback, without a mesh
// (hosts are ready at registration) and with the bench agent listener.
type coreCluster struct {
	bin, dir string
	peers    string
	nodes    []*coreNode
}

// lockedBuffer keeps a process's output for the error report.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // bounded: keep the first MiB
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
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
	nd := &coreNode{id: id, dataDir: filepath.Join(c.dir, id), raft: addrs[0], http: addrs[1], agent: addrs[2]}
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
	nd.log = &lockedBuffer{}
	nd.cmd = exec.Command(c.bin, args...)
	nd.cmd.Stdout, nd.cmd.Stderr = nd.log, nd.log
	// As bench/faults: its own process group (a Ctrl-C reaches the bench,
	// which stops the nodes), and the nodes die with the bench if it is
	// killed.
	nd.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := nd.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.id, err)
	}
	nd.exited = make(chan error, 1)
	go func() { nd.exited <- nd.cmd.Wait() }()
	return nil
}

// stop ends every process (SIGTERM, then SIGKILL after 10 s).
func (c *coreCluster) stop() {
	for _, nd := range c.nodes {
		if nd.cmd == nil || nd.cmd.Process == nil {
			continue
		}
		_ = nd.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, nd := range c.nodes {
		if nd.cmd == nil || nd.cmd.Process == nil {
			continue
		}
		select {
		case <-nd.exited:
		case <-time.After(10 * time.Second):
			_ = nd.cmd.Process.Kill()
			<-nd.exited
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
		logs = append(logs, nd.id+": "+nd.log.String())
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
