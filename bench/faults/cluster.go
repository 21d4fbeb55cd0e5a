package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	"potluck/internal/freeport"
)

// binaries are the node programs the cluster runs.
type binaries struct{ core, front, back string }

// buildBinaries compiles potluck-core, potluck-front and potluck-back into
// dir (needs the go tool and this module's source: run from the repository).
func buildBinaries(ctx context.Context, dir string) (binaries, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+string(filepath.Separator),
		"potluck/cmd/potluck-core", "potluck/cmd/potluck-front", "potluck/cmd/potluck-back")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("go build (run from the repository, or give --bin-dir): %w\n%s", err, out)
	}
	return binDir(dir)
}

// binDir finds the node programs in dir.
func binDir(dir string) (binaries, error) {
	b := binaries{
		core:  filepath.Join(dir, "potluck-core"),
		front: filepath.Join(dir, "potluck-front"),
		back:  filepath.Join(dir, "potluck-back"),
	}
	for _, p := range []string{b.core, b.front, b.back} {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return binaries{}, fmt.Errorf("no executable %s", p)
		}
	}
	return b, nil
}

// cluster is a `make demo` cluster of real processes on loopback: three
// core nodes, one Front and two Backs, each on free ports.
type cluster struct {
	dir  string
	bins binaries
	log  *slog.Logger

	api        *apiclient.Client
	cores      []*proc
	front      *proc
	backs      []*proc
	backDirs   []string
	frontAddr  string // the Front's client HTTP listener
	frontAdmin string

	closeOnce sync.Once
}

// Node names, as registered.
const (
	frontName = "front1"
	numBacks  = 2
)

func backName(i int) string { return fmt.Sprintf("back%d", i+1) }

// startCluster starts every node and waits until the core has a leader and
// the Front and both Backs are ready. On error the caller still calls close.
func startCluster(ctx context.Context, dir string, bins binaries, log *slog.Logger) (*cluster, error) {
	c := &cluster{dir: dir, bins: bins, log: log}
	caDir := filepath.Join(dir, "cluster-ca")
	if out, err := exec.CommandContext(ctx, bins.core, "ca", "init", "--out", caDir, "--name", "bench-faults").CombinedOutput(); err != nil {
		return c, fmt.Errorf("potluck-core ca init: %w: %s", err, out)
	}
	token, err := randomToken()
	if err != nil {
		return c, err
	}
	tokenFile := filepath.Join(dir, "operator.token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return c, fmt.Errorf("operator token: %w", err)
	}

	const cores = 3
	var raft, httpAddrs, peers []string
	for i := range cores {
		r, err1 := freeport.TCP()
		h, err2 := freeport.TCP()
		if err := errors.Join(err1, err2); err != nil {
			return c, err
		}
		raft, httpAddrs = append(raft, r), append(httpAddrs, h)
		peers = append(peers, fmt.Sprintf("core%d=%s", i+1, r))
	}
	var coreURLs []string
	for i := range cores {
		mesh, err := freeport.UDP()
		if err != nil {
			return c, err
		}
		id := fmt.Sprintf("core%d", i+1)
		p := newProc(id, bins.core, filepath.Join(dir, id+".log"),
			"--id", id, "--data-dir", filepath.Join(dir, id), "--raft-bind", raft[i], "--peers", strings.Join(peers, ","),
			"--http", httpAddrs[i], "--operator-token-file", tokenFile, "--cluster-ca", caDir,
			"--mesh-port", strconv.Itoa(int(mesh)), "--fast-raft")
		c.cores = append(c.cores, p)
		if err := p.start(); err != nil {
			return c, err
		}
		coreURLs = append(coreURLs, "http://"+httpAddrs[i])
	}
	c.api, err = apiclient.New(coreURLs[0], token, apiclient.WithRetries(5, 500*time.Millisecond),
		apiclient.WithHTTPClient(&http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{Proxy: nil}}))
	if err != nil {
		return c, err
	}
	log.Info("waiting for a core leader")
	if err := poll(ctx, 60*time.Second, 200*time.Millisecond, func(ctx context.Context) bool {
		st, err := c.api.Status(ctx)
		return err == nil && st.Leader != ""
	}); err != nil {
		return c, fmt.Errorf("the core elected no leader (logs in %s): %w", dir, err)
	}
	join, err := c.api.CreateToken(ctx, "bench-faults hosts", 0)
	if err != nil {
		return c, fmt.Errorf("join token: %w", err)
	}
	joinFile := filepath.Join(dir, "join.token")
	if err := os.WriteFile(joinFile, []byte(join.Token), 0o600); err != nil {
		return c, fmt.Errorf("join token: %w", err)
	}

	coreList := strings.Join(coreURLs, ",")
	var err1, err2 error
	c.frontAddr, err1 = freeport.TCP()
	c.frontAdmin, err2 = freeport.TCP()
	frontMesh, err3 := freeport.UDP()
	if err := errors.Join(err1, err2, err3); err != nil {
		return c, err
	}
	c.front = newProc(frontName, bins.front, filepath.Join(dir, frontName+".log"),
		"--core", coreList, "--join-token-file", joinFile, "--name", frontName, "--data-dir", filepath.Join(dir, frontName),
		"--listen", c.frontAddr, "--admin", c.frontAdmin, "--mesh-port", strconv.Itoa(int(frontMesh)),
		"--endpoint", "127.0.0.1:"+strconv.Itoa(int(frontMesh)))
	if err := c.front.start(); err != nil {
		return c, err
	}
	// Backs publish containers on 127.0.X.2 and .3 with X of this run's
	// own: the core gives every Back the same port range, so a demo or
	// another run on this machine must not hold the same addresses.
	octet := 1 + time.Now().UnixNano()%250
	for i := range numBacks {
		metrics, err := freeport.TCP()
		if err != nil {
			return c, err
		}
		name := backName(i)
		bdir := filepath.Join(dir, name)
		c.backDirs = append(c.backDirs, bdir)
		p := newProc(name, bins.back, filepath.Join(dir, name+".log"),
			"--core", coreList, "--join-token-file", joinFile, "--name", name, "--data-dir", bdir,
			"--cpus", "1", "--memory", "512MiB", "--disk", "2GiB",
			"--publish-ip", fmt.Sprintf("127.0.%d.%d", octet, i+2), "--metrics", metrics)
		c.backs = append(c.backs, p)
		if err := p.start(); err != nil {
			return c, err
		}
	}
	log.Info("waiting for the Front and the Backs to be ready")
	err = poll(ctx, 90*time.Second, 300*time.Millisecond, func(ctx context.Context) bool {
		hs, _, err := c.api.Hosts(ctx, nil)
		if err != nil {
			return false
		}
		ready := 0
		for _, h := range hs {
			if h.Status == "ready" {
				ready++
			}
		}
		return ready == 1+numBacks
	})
	if err != nil {
		return c, fmt.Errorf("the hosts did not become ready (logs in %s): %w", dir, err)
	}
	return c, nil
}

// deploy pushes the app tarball and installs it on the Front and both
// Backs, waiting until both instances run.
func (c *cluster) deploy(ctx context.Context, tarball, name, domain string) error {
	if _, err := c.api.UploadAppFile(ctx, name, 8080, tarball, nil); err != nil {
		return fmt.Errorf("pushing the app: %w", err)
	}
	_, err := c.api.CreateInstallation(ctx, apiclient.CreateInstallationRequest{
		Name: name, App: name, Fronts: 1, Backs: numBacks, Domain: domain,
		CPUs: 0.25, MemoryMB: 64, DiskMB: 64, ContainerPort: 8080,
	})
	if err != nil {
		return fmt.Errorf("installing the app: %w", err)
	}
	err = poll(ctx, 3*time.Minute, 500*time.Millisecond, func(ctx context.Context) bool {
		inst, _, err := c.api.Installation(ctx, name, nil)
		if err != nil {
			return false
		}
		running := 0
		for _, in := range inst.Instances {
			if in.State == "running" {
				running++
			}
		}
		return running == numBacks
	})
	if err != nil {
		return fmt.Errorf("the instances did not run (logs in %s): %w", c.dir, err)
	}
	return nil
}

// hostIDs are the Backs' host ids, read from their data directories (so
// cleanup works with the core gone); a Back that never registered has none.
func (c *cluster) hostIDs() []string {
	var ids []string
	for _, d := range c.backDirs {
		b, err := os.ReadFile(filepath.Join(d, "identity.json"))
		if err != nil {
			continue
		}
		var id struct {
			HostID string `json:"host_id"`
		}
		if json.Unmarshal(b, &id) == nil && id.HostID != "" {
			ids = append(ids, id.HostID)
		}
	}
	return ids
}

// containerOf returns the id and name of Back i's running instance
// container (looked up by this run's host label only).
func (c *cluster) containerOf(ctx context.Context, i int) (id, name string, err error) {
	ids := c.hostIDs()
	if len(ids) <= i {
		return "", "", fmt.Errorf("%s has no host id yet", backName(i))
	}
	out, err := docker(ctx, "ps", "--filter", "label=io.potluck.managed=true", "--filter", "label=io.potluck.host="+ids[i],
		"--format", "{{.ID}} {{.Names}}")
	if err != nil {
		return "", "", err
	}
	id, name, ok := strings.Cut(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), " ")
	if !ok {
		return "", "", fmt.Errorf("no running container of %s", backName(i))
	}
	return id, name, nil
}

// instanceOn returns the id of the installation's instance on Back i.
func (c *cluster) instanceOn(ctx context.Context, i int) (string, error) {
	inst, _, err := c.api.Installation(ctx, appName, nil)
	if err != nil {
		return "", fmt.Errorf("installation: %w", err)
	}
	for _, in := range inst.Instances {
		if in.HostName == backName(i) {
			return in.ID, nil
		}
	}
	return "", fmt.Errorf("no instance on %s", backName(i))
}

// containerStarted is when the named container last started.
func containerStarted(ctx context.Context, name string) (time.Time, error) {
	out, err := docker(ctx, "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", name)
	if err != nil {
		return time.Time{}, err
	}
	running, at, _ := strings.Cut(strings.TrimSpace(out), " ")
	if running != "true" {
		return time.Time{}, fmt.Errorf("container %s is not running", name)
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return time.Time{}, fmt.Errorf("container %s: start time %q: %w", name, at, err)
	}
	return t, nil
}

// waitListening waits until something accepts on addr: the restarted
// Front's listener.
func waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	return poll(ctx, timeout, 5*time.Millisecond, func(context.Context) bool {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

// close stops the Front and the Backs, removes the Backs' containers and
// networks (only those labelled with this run's host ids), then stops the
// core nodes. It runs once and does not depend on the caller's context, so
// it also cleans up after Ctrl-C.
func (c *cluster) close() error {
	var errs []error
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		stop := func(p *proc) {
			if p != nil {
				wg.Go(func() {
					if err := p.stop(10 * time.Second); err != nil {
						c.log.Warn("stopping a node", "err", err)
					}
				})
			}
		}
		stop(c.front)
		for _, b := range c.backs {
			stop(b)
		}
		wg.Wait()
		for _, id := range c.hostIDs() {
			errs = append(errs, removeHostResources(ctx, id))
		}
		for _, p := range c.cores {
			stop(p)
		}
		wg.Wait()
	})
	return errors.Join(errs...)
}

// removeHostResources removes the containers and networks a Back labelled
// with its host id.
func removeHostResources(ctx context.Context, hostID string) error {
	label := "label=io.potluck.host=" + hostID
	var errs []error
	out, err := docker(ctx, "ps", "-aq", "--filter", label)
	if err != nil {
		return err
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		_, err := docker(ctx, append([]string{"rm", "-f"}, ids...)...)
		errs = append(errs, err)
	}
	out, err = docker(ctx, "network", "ls", "-q", "--filter", label)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		_, err := docker(ctx, append([]string{"network", "rm"}, ids...)...)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// docker runs the docker CLI, bounded in time.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("docker %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func randomToken() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// poll calls ok (with a context bounded by 5 s) every interval until it is
// true, ctx ends or timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, ok func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		callCtx, callCancel := context.WithTimeout(ctx, 5*time.Second)
		done := ok(callCtx)
		callCancel()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
