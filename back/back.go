// Package back is the Back agent: it follows the instances the core placed on
// this host, runs them as containers through the Docker Engine (images
// fetched over the tunnel and digest-checked, or pulled), exposes each on the
// host's tunnel address to its installation's Fronts only, and reports their
// state with heartbeats. Containers keep running while the core is away, and
// a restarted agent adopts them instead of starting duplicates.
package back

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"potluck/agent"
	"potluck/agentproto"
	"potluck/back/engine"
	"potluck/lb/metrics"
	"potluck/meshnet"
)

// Config describes a Back.
type Config struct {
	Agent      agent.Config
	DockerHost string // "" = DOCKER_HOST or the default socket
	// PublishIP is the loopback address containers are published on (and
	// forwards target); default 127.0.0.1. Backs sharing a machine (a demo,
	// a test) each take their own, since the core gives every Back the same
	// port range.
	PublishIP netip.Addr
	// Heartbeat is how often state is reported (the core's TTL is 30 s).
	Heartbeat time.Duration
	// Resync is how often containers are checked against the desired state
	// even when it does not change (crashed or stopped containers come back).
	Resync time.Duration
	// ReadyTimeout bounds the wait for a new container to answer on its port.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
}

// Back is a running Back agent.
type Back struct {
	cfg    Config
	log    *slog.Logger
	agent  *agent.Agent
	engine *engine.Engine

	mu       sync.Mutex
	desired  *agentproto.DesiredState
	reports  map[string]agentproto.InstanceReport
	forwards map[uint16]*meshnet.Forward // by port; parked with an empty allow-list when unused
	checker  *http.Client                // asks instances whether they answer
	wake     chan struct{}
}

// Start connects to the Docker Engine (saying clearly when it is unreachable
// or too old), registers and brings up the mesh.
func Start(ctx context.Context, cfg Config) (*Back, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.Resync == 0 {
		cfg.Resync = 10 * time.Second
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	cfg.Agent.Role = "back"
	cfg.Agent.Logger = cfg.Logger
	if !cfg.PublishIP.IsValid() {
		cfg.PublishIP = netip.MustParseAddr("127.0.0.1")
	}
	if !cfg.PublishIP.IsLoopback() {
		return nil, fmt.Errorf("publish address %s is not a loopback address: containers are never exposed beyond the host", cfg.PublishIP)
	}
	eng, err := engine.Connect(ctx, cfg.DockerHost, cfg.Logger)
	if err != nil {
		return nil, err
	}
	ag, err := agent.Start(ctx, cfg.Agent)
	if err != nil {
		eng.Close()
		return nil, err
	}
	return &Back{
		cfg: cfg, log: cfg.Logger, agent: ag, engine: eng,
		reports:  map[string]agentproto.InstanceReport{},
		forwards: map[uint16]*meshnet.Forward{},
		wake:     make(chan struct{}, 1),
		checker:  &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}, nil
}

// Agent is the host agent underneath (identity, mesh node).
func (b *Back) Agent() *agent.Agent { return b.agent }

// Run follows the core and keeps containers converged until ctx ends. The
// containers are left running when it returns: a Back that stops or restarts
// does not take its apps down.
//
// When the host is decommissioned it removes every container it ran and
// returns agent.ErrDecommissioned.
func (b *Back) Run(ctx context.Context) error {
	loopCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.agent.Heartbeats(loopCtx, b.cfg.Heartbeat, b.snapshotReports) })
	wg.Go(func() { b.converge(loopCtx) })
	err := b.agent.Follow(ctx, func(ctx context.Context, d *agentproto.DesiredState) error {
		b.mu.Lock()
		b.desired = d
		b.mu.Unlock()
		b.poke()
		return nil
	})
	stop()
	wg.Wait()
	if errors.Is(err, agent.ErrDecommissioned) {
		b.reconcile(context.WithoutCancel(ctx), &agentproto.DesiredState{})
	}
	return err
}

// Close releases the mesh node and the engine client.
func (b *Back) Close() error {
	b.mu.Lock()
	for _, f := range b.forwards {
		f.Close()
	}
	b.mu.Unlock()
	b.engine.Close()
	return b.agent.Close()
}

func (b *Back) poke() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// converge reconciles on every new desired state and every Resync.
func (b *Back) converge(ctx context.Context) {
	t := time.NewTicker(b.cfg.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		case <-t.C:
		}
		b.mu.Lock()
		d := b.desired
		b.mu.Unlock()
		if d != nil {
			b.reconcile(ctx, d)
		}
	}
}

func (b *Back) snapshotReports() []agentproto.InstanceReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]agentproto.InstanceReport, 0, len(b.reports))
	for _, r := range b.reports {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (b *Back) report(id string, state agentproto.InstanceState, msg string) {
	b.mu.Lock()
	prev, had := b.reports[id]
	b.reports[id] = agentproto.InstanceReport{ID: id, State: state, Message: msg}
	b.mu.Unlock()
	if !had || prev.State != state || prev.Message != msg {
		b.log.Info("instance state", "instance", id, "state", state, "message", msg)
	}
}

// reconcile makes the engine and the forwards match d.
func (b *Back) reconcile(ctx context.Context, d *agentproto.DesiredState) {
	want := map[string]agentproto.Instance{}
	for _, in := range d.Instances {
		want[in.ID] = in
	}
	running, err := b.engine.List(ctx, b.agent.Identity().HostID)
	if err != nil {
		b.log.Error("cannot list containers", "err", err)
		return
	}
	// Containers no longer wanted go first, freeing their ports.
	for _, c := range running {
		if _, ok := want[c.Instance]; !ok {
			b.log.Info("removing container no longer wanted", "instance", c.Instance, "container", c.Name)
			if err := b.engine.Remove(ctx, c.ID, 10*time.Second); err != nil {
				b.log.Error("remove container", "err", err)
			}
		}
	}
	b.mu.Lock()
	for port, f := range b.forwards {
		if !wantsPort(d.Instances, port) {
			// Parked, not closed: gVisor keeps a closed port reserved while
			// its connections sit in TIME_WAIT (60 s) and netstack offers no
			// SO_REUSEADDR, so a port handed out again soon could not be
			// listened on. An empty allow-list cuts and refuses everything.
			f.SetAllowed(nil)
		}
	}
	for id := range b.reports {
		if _, ok := want[id]; !ok {
			delete(b.reports, id)
		}
	}
	b.mu.Unlock()

	byInstance := map[string]engine.Container{}
	for _, c := range running {
		byInstance[c.Instance] = c
	}
	for _, in := range d.Instances {
		if ctx.Err() != nil {
			return
		}
		b.ensure(ctx, in, byInstance[in.ID])
	}
	b.removeUnusedImages(ctx, d.Instances)
}

func wantsPort(ins []agentproto.Instance, port uint16) bool {
	for _, in := range ins {
		if uint16(in.Port) == port {
			return true
		}
	}
	return false
}

// ensure brings one instance to running and exposes it.
func (b *Back) ensure(ctx context.Context, in agentproto.Instance, existing engine.Container) {
	if existing.ID == "" || !existing.Running() {
		image, err := b.ensureImage(ctx, in)
		if err != nil {
			b.report(in.ID, agentproto.InstanceFailed, err.Error())
			return
		}
		b.report(in.ID, agentproto.InstancePending, "starting container")
		_, err = b.engine.Run(ctx, engine.Spec{
			Host: b.agent.Identity().HostID, HostIP: b.cfg.PublishIP, Installation: in.Installation, Instance: in.ID, App: in.App, Image: image,
			HostPort: uint16(in.Port), ContainerPort: uint16(in.ContainerPort),
			CPUs: float64(in.MilliCPU) / 1000, MemoryBytes: in.MemoryMB << 20, Env: in.Env,
		})
		if err != nil {
			b.report(in.ID, agentproto.InstanceFailed, err.Error())
			return
		}
	}
	if err := b.expose(in); err != nil {
		b.report(in.ID, agentproto.InstanceFailed, err.Error())
		return
	}
	if err := b.waitAnswers(ctx, b.target(in.Port), b.readyTimeout(existing)); err != nil {
		b.report(in.ID, agentproto.InstanceFailed, "app does not answer on its port: "+err.Error())
		return
	}
	b.report(in.ID, agentproto.InstanceRunning, "")
}

// readyTimeout is short for a container that was already running (a
// resync), long for one just started.
func (b *Back) readyTimeout(existing engine.Container) time.Duration {
	if existing.Running() {
		return 3 * time.Second
	}
	return b.cfg.ReadyTimeout
}

// expose forwards tunnel:PORT to 127.0.0.1:PORT for the installation's Fronts.
func (b *Back) expose(in agentproto.Instance) error {
	allowed := make([]netip.Addr, 0, len(in.AllowedFrom))
	for _, s := range in.AllowedFrom {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("core sent a bad Front address %q: %w", s, err)
		}
		allowed = append(allowed, a)
	}
	port := uint16(in.Port)
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.forwards[port]; ok {
		f.SetAllowed(allowed)
		return nil
	}
	f, err := b.agent.Node().Forward(port, b.target(in.Port), allowed)
	if err != nil {
		return err
	}
	b.forwards[port] = f
	return nil
}

// target is where an instance's container listens on this host.
func (b *Back) target(port int) string {
	return netip.AddrPortFrom(b.cfg.PublishIP, uint16(port)).String()
}

// waitAnswers waits until an HTTP request to addr gets any answer.
func (b *Back) waitAnswers(ctx context.Context, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "http://" + addr + "/"
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := b.checker.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer within %s: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// blobRepo is the repository uploaded images are tagged into on a Back,
// by digest, so that two apps whose tarballs carry the same tag never run
// each other's code, and so the loaded image is the cache.
const blobRepo = "potluck-blob/"

func imageTag(digest string) string {
	return blobRepo + strings.TrimPrefix(digest, "sha256:")[:24] + ":latest"
}

// ensureImage returns the image to run: an uploaded tarball fetched over
// the tunnel (digest checked) and loaded, or a registry image pulled.
func (b *Back) ensureImage(ctx context.Context, in agentproto.Instance) (string, error) {
	if in.Digest == "" {
		if in.Image == "" {
			return "", errors.New("the app names no image")
		}
		if ok, err := b.engine.HasImage(ctx, in.Image); err != nil {
			return "", err
		} else if !ok {
			b.report(in.ID, agentproto.InstancePending, "pulling "+in.Image)
			if err := b.engine.PullImage(ctx, in.Image); err != nil {
				return "", err
			}
		}
		return in.Image, nil
	}
	tag := imageTag(in.Digest)
	if ok, err := b.engine.HasImage(ctx, tag); err != nil {
		return "", err
	} else if ok {
		return tag, nil
	}
	b.report(in.ID, agentproto.InstancePending, "fetching image")
	path, err := b.fetchBlob(ctx, in)
	if err != nil {
		return "", err
	}
	defer os.Remove(path) // once loaded, the engine's copy is the cache
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	refs, err := b.engine.LoadImage(ctx, f)
	if err != nil {
		return "", err
	}
	src := in.Image
	if src == "" || !slices.Contains(refs, src) {
		src = refs[0]
	}
	if err := b.engine.TagImage(ctx, src, tag); err != nil {
		return "", err
	}
	return tag, nil
}

// fetchBlob downloads an image tarball over the tunnel into the data
// directory, checking its digest.
func (b *Back) fetchBlob(ctx context.Context, in agentproto.Instance) (string, error) {
	dir := filepath.Join(b.cfg.Agent.DataDir, "blobs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	hexDigest := strings.TrimPrefix(in.Digest, "sha256:")
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = b.agent.Download(ctx, in.BlobPath, io.MultiWriter(tmp, h))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
			err = fmt.Errorf("digest sha256:%s, want %s", got, in.Digest)
		}
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("download image %s: %w", in.Digest, err)
	}
	return tmp.Name(), nil
}

// removeUnusedImages drops uploaded images no instance here needs any more.
func (b *Back) removeUnusedImages(ctx context.Context, ins []agentproto.Instance) {
	keep := map[string]bool{}
	for _, in := range ins {
		if in.Digest != "" {
			keep[imageTag(in.Digest)] = true
		}
	}
	refs, err := b.engine.ImagesMatching(ctx, blobRepo+"*")
	if err != nil {
		b.log.Warn("could not list images", "err", err)
		return
	}
	for _, ref := range refs {
		if keep[ref] {
			continue
		}
		b.log.Info("removing image no instance needs", "image", ref)
		if err := b.engine.RemoveImage(ctx, ref); err != nil {
			b.log.Warn("could not remove unused image", "err", err)
		}
	}
}

// AdminHandler serves /metrics (Prometheus text), /status (JSON) and
// /healthz.
func (b *Back) AdminHandler() http.Handler {
	return b.agent.AdminHandler(func(mw *metrics.Writer) {
		byState := map[agentproto.InstanceState]int{}
		for _, r := range b.snapshotReports() {
			byState[r.State]++
		}
		for _, s := range []agentproto.InstanceState{agentproto.InstancePending, agentproto.InstanceRunning, agentproto.InstanceFailed} {
			mw.Gauge("potluck_back_instances", "Instances on this Back by state.", metrics.Labels("state", string(s)), float64(byState[s]))
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		for port, f := range b.forwards {
			accepted, refused := f.Stats()
			l := metrics.Labels("port", strconv.Itoa(int(port)))
			mw.Counter("potluck_back_forward_accepted_total", "Tunnel connections relayed to an instance.", l, accepted)
			mw.Counter("potluck_back_forward_refused_total", "Tunnel connections refused: peer not a Front of the installation.", l, refused)
		}
	}, func() map[string]any {
		return map[string]any{"instances": b.snapshotReports()}
	})
}
