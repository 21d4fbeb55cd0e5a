// Package procluster starts a `make demo` cluster of real processes on
// loopback (potluck-core nodes, one potluck-front, potluck-backs running
// containers in the Docker Engine) for the benchmarks that measure or break
// the real binaries, and removes everything it started.
package procluster

import (
	"cmp"
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
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"potluck/apiclient"
	"potluck/internal/freeport"
)

// Binaries are the node programs the cluster runs.
type Binaries struct{ Core, Front, Back string }

// BuildBinaries compiles potluck-core, potluck-front and potluck-back into
// dir (needs the go tool and this module's source: run from the repository).
func BuildBinaries(ctx context.Context, dir string) (Binaries, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+string(filepath.Separator),
		"potluck/cmd/potluck-core", "potluck/cmd/potluck-front", "potluck/cmd/potluck-back")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build (run from the repository, or give --bin-dir): %w\n%s", err, out)
	}
	return BinDir(dir)
}

// BinDir finds the node programs in dir.
func BinDir(dir string) (Binaries, error) {
	b := Binaries{
		Core:  filepath.Join(dir, "potluck-core"),
		Front: filepath.Join(dir, "potluck-front"),
		Back:  filepath.Join(dir, "potluck-back"),
	}
	for _, p := range []string{b.Core, b.Front, b.Back} {
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return Binaries{}, fmt.Errorf("no executable %s", p)
		}
	}
	return b, nil
}

// Config describes a cluster.
type Config struct {
	// Dir holds the nodes' state and logs (required).
	Dir  string
	Bins Binaries
	// Cores is the number of core nodes (default 3); Backs the number of
	// Backs (default 2).
	Cores, Backs int
	// Fronts is the number of Fronts (default 1); an app is installed on
	// all of them.
	Fronts int
	// FrontArgs and BackArgs are extra flags for every Front and every
	// Back (e.g. --pprof); FrontArgsOf, if set, adds flags for Front i.
	FrontArgs, BackArgs []string
	FrontArgsOf         func(i int) []string
	// BackCPUs is the CPUs every Back declares (default 1).
	BackCPUs float64
	// Name labels the cluster's CA and tokens (default "procluster").
	Name   string
	Logger *slog.Logger
}

// Cluster is a `make demo` cluster of real processes on loopback: core
// nodes, one Front and Backs, each on free ports.
type Cluster struct {
	dir  string
	bins Binaries
	log  *slog.Logger

	API   *apiclient.Client
	Cores []*Proc
	// Front, FrontAddr and FrontAdmin are the first Front's (Fronts[0]):
	// its process, client HTTP listener and admin listener (/metrics,
	// --pprof). FrontAddrs and FrontAdmins are every Front's.
	Front                   *Proc
	Fronts                  []*Proc
	FrontAddr, FrontAdmin   string
	FrontAddrs, FrontAdmins []string
	Backs                   []*Proc
	backDirs                []string
	// BackMetrics are the Backs' admin listeners (/metrics, --pprof), and
	// PublishIPs the loopback addresses their containers are published on.
	BackMetrics []string
	PublishIPs  []string

	closeOnce sync.Once
}

// FrontName is the first Front's host name, as registered.
const FrontName = "front1"

// FrontNameOf is Front i's host name, as registered.
func FrontNameOf(i int) string { return fmt.Sprintf("front%d", i+1) }

// BackName is Back i's host name, as registered.
func BackName(i int) string { return fmt.Sprintf("back%d", i+1) }

// Dir is where the nodes' state and logs are.
func (c *Cluster) Dir() string { return c.dir }

// Start starts every node and waits until the core has a leader and the
// Front and the Backs are ready. On error the caller still calls Close.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	cfg.Cores, cfg.Backs, cfg.Fronts = cmp.Or(cfg.Cores, 3), cmp.Or(cfg.Backs, 2), cmp.Or(cfg.Fronts, 1)
	cfg.Name = cmp.Or(cfg.Name, "procluster")
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir, bins, log := cfg.Dir, cfg.Bins, cfg.Logger
	c := &Cluster{dir: dir, bins: bins, log: log}
	caDir := filepath.Join(dir, "cluster-ca")
	if out, err := exec.CommandContext(ctx, bins.Core, "ca", "init", "--out", caDir, "--name", cfg.Name).CombinedOutput(); err != nil {
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

	// Every core's raft and API ports at once, so none repeats before the
	// cores bind them.
	ports, err := freeport.TCPs(2 * cfg.Cores)
	if err != nil {
		return c, err
	}
	raft, httpAddrs := ports[:cfg.Cores], ports[cfg.Cores:]
	var peers []string
	for i, r := range raft {
		peers = append(peers, fmt.Sprintf("core%d=%s", i+1, r))
	}
	var coreURLs []string
	for i := range cfg.Cores {
		mesh, err := freeport.UDP()
		if err != nil {
			return c, err
		}
		id := fmt.Sprintf("core%d", i+1)
		p := NewProc(id, bins.Core, filepath.Join(dir, id+".log"),
			"--id", id, "--data-dir", filepath.Join(dir, id), "--raft-bind", raft[i], "--peers", strings.Join(peers, ","),
			"--http", httpAddrs[i], "--operator-token-file", tokenFile, "--cluster-ca", caDir,
			"--mesh-port", strconv.Itoa(int(mesh)), "--fast-raft")
		c.Cores = append(c.Cores, p)
		if err := p.Start(); err != nil {
			return c, err
		}
		coreURLs = append(coreURLs, "http://"+httpAddrs[i])
	}
	c.API, err = apiclient.New(coreURLs[0], token, apiclient.WithRetries(5, 500*time.Millisecond),
		apiclient.WithHTTPClient(&http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{Proxy: nil}}))
	if err != nil {
		return c, err
	}
	log.Info("waiting for a core leader")
	if err := pollWhileRunning(ctx, 60*time.Second, 200*time.Millisecond, c.Cores, func(ctx context.Context) bool {
		st, err := c.API.Status(ctx)
		return err == nil && st.Leader != ""
	}); err != nil {
		return c, fmt.Errorf("the core elected no leader (logs in %s): %w", dir, err)
	}
	join, err := c.API.CreateToken(ctx, cfg.Name+" hosts", 0)
	if err != nil {
		return c, fmt.Errorf("join token: %w", err)
	}
	joinFile := filepath.Join(dir, "join.token")
	if err := os.WriteFile(joinFile, []byte(join.Token), 0o600); err != nil {
		return c, fmt.Errorf("join token: %w", err)
	}

	coreList := strings.Join(coreURLs, ",")
	for i := range cfg.Fronts {
		addr, err1 := freeport.TCP()
		admin, err2 := freeport.TCP()
		mesh, err3 := freeport.UDP()
		if err := errors.Join(err1, err2, err3); err != nil {
			return c, err
		}
		name := FrontNameOf(i)
		args := append([]string{
			"--core", coreList, "--join-token-file", joinFile, "--name", name, "--data-dir", filepath.Join(dir, name),
			"--listen", addr, "--admin", admin, "--mesh-port", strconv.Itoa(int(mesh)),
			"--endpoint", "127.0.0.1:" + strconv.Itoa(int(mesh))}, cfg.FrontArgs...)
		if cfg.FrontArgsOf != nil {
			args = append(args, cfg.FrontArgsOf(i)...)
		}
		p := NewProc(name, bins.Front, filepath.Join(dir, name+".log"), args...)
		c.Fronts, c.FrontAddrs, c.FrontAdmins = append(c.Fronts, p), append(c.FrontAddrs, addr), append(c.FrontAdmins, admin)
		if err := p.Start(); err != nil {
			return c, err
		}
	}
	c.Front, c.FrontAddr, c.FrontAdmin = c.Fronts[0], c.FrontAddrs[0], c.FrontAdmins[0]
	// Backs publish containers on 127.0.X.2, .3, ... with X of this run's
	// own: the core gives every Back the same port range, so a demo or
	// another run on this machine must not hold the same addresses.
	octet := 1 + time.Now().UnixNano()%250
	for i := range cfg.Backs {
		metrics, err := freeport.TCP()
		if err != nil {
			return c, err
		}
		name := BackName(i)
		bdir := filepath.Join(dir, name)
		publish := fmt.Sprintf("127.0.%d.%d", octet, i+2)
		c.backDirs = append(c.backDirs, bdir)
		c.BackMetrics = append(c.BackMetrics, metrics)
		c.PublishIPs = append(c.PublishIPs, publish)
		p := NewProc(name, bins.Back, filepath.Join(dir, name+".log"), append([]string{
			"--core", coreList, "--join-token-file", joinFile, "--name", name, "--data-dir", bdir,
			"--cpus", strconv.FormatFloat(cmp.Or(cfg.BackCPUs, 1), 'f', -1, 64), "--memory", "512MiB", "--disk", "2GiB",
			"--publish-ip", publish, "--metrics", metrics}, cfg.BackArgs...)...)
		c.Backs = append(c.Backs, p)
		if err := p.Start(); err != nil {
			return c, err
		}
	}
	log.Info("waiting for the Front and the Backs to be ready")
	err = pollWhileRunning(ctx, 90*time.Second, 300*time.Millisecond, slices.Concat(c.Cores, c.Fronts, c.Backs), func(ctx context.Context) bool {
		hs, _, err := c.API.Hosts(ctx, nil)
		if err != nil {
			return false
		}
		ready := 0
		for _, h := range hs {
			if h.Status == "ready" {
				ready++
			}
		}
		return ready == cfg.Fronts+cfg.Backs
	})
	if err != nil {
		return c, fmt.Errorf("the hosts did not become ready (logs in %s): %w", dir, err)
	}
	return c, nil
}

// pollWhileRunning polls as Poll does but fails at once, naming it, when
// one of procs exits: a node that could not start (a port taken between
// freeport's pick and its bind) would otherwise cost the whole wait.
func pollWhileRunning(ctx context.Context, timeout, interval time.Duration, procs []*Proc, ok func(context.Context) bool) error {
	var exited *Proc
	err := Poll(ctx, timeout, interval, func(ctx context.Context) bool {
		if i := slices.IndexFunc(procs, func(p *Proc) bool { return !p.Running() }); i >= 0 {
			exited = procs[i]
			return true
		}
		return ok(ctx)
	})
	if exited != nil {
		return fmt.Errorf("%s exited (its log: %s)", exited.Name, exited.logPath)
	}
	return err
}

// Deploy pushes the app tarball (its container listens on 8080) and installs
// it on every Front and one instance on every Back, each granted cpus CPUs (0:
// a quarter, as make demo), waiting until they all run.
func (c *Cluster) Deploy(ctx context.Context, tarball, name, domain string, cpus float64) error {
	if _, err := c.API.UploadAppFile(ctx, name, 8080, tarball, nil); err != nil {
		return fmt.Errorf("pushing the app: %w", err)
	}
	_, err := c.API.CreateInstallation(ctx, apiclient.CreateInstallationRequest{
		Name: name, App: name, Fronts: len(c.Fronts), Backs: len(c.Backs), Domain: domain,
		CPUs: cmp.Or(cpus, 0.25), MemoryMB: 64, DiskMB: 64, ContainerPort: 8080,
	})
	if err != nil {
		return fmt.Errorf("installing the app: %w", err)
	}
	err = Poll(ctx, 3*time.Minute, 500*time.Millisecond, func(ctx context.Context) bool {
		inst, _, err := c.API.Installation(ctx, name, nil)
		if err != nil {
			return false
		}
		running := 0
		for _, in := range inst.Instances {
			if in.State == "running" {
				running++
			}
		}
		return running == len(c.Backs)
	})
	if err != nil {
		return fmt.Errorf("the instances did not run (logs in %s): %w", c.dir, err)
	}
	return nil
}

// HostIDs are the Backs' host ids, read from their data directories (so
// cleanup works with the core gone); a Back that never registered has none.
func (c *Cluster) HostIDs() []string {
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

// ContainerOf returns the id and name of Back i's running instance
// container of installation app (looked up by this run's labels only).
func (c *Cluster) ContainerOf(ctx context.Context, app string, i int) (id, name string, err error) {
	ids := c.HostIDs()
	if len(ids) <= i {
		return "", "", fmt.Errorf("%s has no host id yet", BackName(i))
	}
	out, err := Docker(ctx, "ps", "--filter", "label=io.potluck.managed=true", "--filter", "label=io.potluck.host="+ids[i],
		"--filter", "label=io.potluck.installation="+app,
		"--format", "{{.ID}} {{.Names}}")
	if err != nil {
		return "", "", err
	}
	id, name, ok := strings.Cut(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]), " ")
	if !ok {
		return "", "", fmt.Errorf("no running container of %s on %s", app, BackName(i))
	}
	return id, name, nil
}

// InstanceOn returns the id of installation app's instance on Back i.
func (c *Cluster) InstanceOn(ctx context.Context, app string, i int) (string, error) {
	inst, _, err := c.API.Installation(ctx, app, nil)
	if err != nil {
		return "", fmt.Errorf("installation: %w", err)
	}
	for _, in := range inst.Instances {
		if in.HostName == BackName(i) {
			return in.ID, nil
		}
	}
	return "", fmt.Errorf("no instance of %s on %s", app, BackName(i))
}

// ContainerStarted is when the named container last started.
func ContainerStarted(ctx context.Context, name string) (time.Time, error) {
	out, err := Docker(ctx, "inspect", "--format", "{{.State.Running}} {{.State.StartedAt}}", name)
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

// WaitListening waits until something accepts on addr: the restarted
// Front's listener.
func WaitListening(ctx context.Context, addr string, timeout time.Duration) error {
	return Poll(ctx, timeout, 5*time.Millisecond, func(context.Context) bool {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
}

// Close stops the Fronts and the Backs, removes the Backs' containers and
// networks (only those labelled with this run's host ids) and untags the
// images they loaded (named after those host ids), then stops the core
// nodes. It runs once and does not depend on the caller's context, so
// it also cleans up after Ctrl-C.
func (c *Cluster) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		stop := func(p *Proc) {
			if p != nil {
				wg.Go(func() {
					if err := p.Stop(10 * time.Second); err != nil {
						c.log.Warn("stopping a node", "err", err)
					}
				})
			}
		}
		for _, f := range c.Fronts {
			stop(f)
		}
		for _, b := range c.Backs {
			stop(b)
		}
		wg.Wait()
		for _, id := range c.HostIDs() {
			errs = append(errs, removeHostResources(ctx, id))
		}
		for _, p := range c.Cores {
			stop(p)
		}
		wg.Wait()
	})
	return errors.Join(errs...)
}

// hostIDPattern is what the core's host ids look like; only such an id is
// put into an image reference.
var hostIDPattern = regexp.MustCompile(`^h-[0-9a-f]{6,40}$`)

// removeHostResources removes the containers and networks a Back labelled
// with its host id, and untags the images it loaded, which it named after
// its host (potluck-blob/<host id>/...).
func removeHostResources(ctx context.Context, hostID string) error {
	label := "label=io.potluck.host=" + hostID
	var errs []error
	out, err := Docker(ctx, "ps", "-aq", "--filter", label)
	if err != nil {
		return err
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		_, err := Docker(ctx, append([]string{"rm", "-f"}, ids...)...)
		errs = append(errs, err)
	}
	out, err = Docker(ctx, "network", "ls", "-q", "--filter", label)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if ids := strings.Fields(out); len(ids) > 0 {
		_, err := Docker(ctx, append([]string{"network", "rm"}, ids...)...)
		errs = append(errs, err)
	}
	if !hostIDPattern.MatchString(hostID) {
		return errors.Join(errs...)
	}
	out, err = Docker(ctx, "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=potluck-blob/"+hostID+"/*")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if refs := strings.Fields(out); len(refs) > 0 {
		_, err := Docker(ctx, append([]string{"rmi"}, refs...)...)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Docker runs the docker CLI, bounded in time.
func Docker(ctx context.Context, args ...string) (string, error) {
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

// Poll calls ok (with a context bounded by 5 s) every interval until it is
// true, ctx ends or timeout passes.
func Poll(ctx context.Context, timeout, interval time.Duration, ok func(context.Context) bool) error {
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
