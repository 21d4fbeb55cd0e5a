// Package back is the Back agent: it follows the instances the core placed on
// this host, runs them as containers through the Docker Engine (images
// fetched over the tunnel and digest-checked, or pulled), exposes each on the
// host's tunnel address to its installation's Fronts only, and reports their
// state with heartbeats. Containers keep running while the core is away, and
// a restarted agent adopts them instead of starting duplicates.
package back

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"potluck/agent"
	"potluck/agentproto"
	"potluck/back/engine"
	"potluck/back/gateway"
	"potluck/back/hostfw"
	"potluck/back/imagetar"
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
	// MetricsInterval is how often the instances' CPU and memory are read
	// from the engine and reported (default agent.DefaultMetricsInterval).
	MetricsInterval time.Duration
	// Resync is how often containers are checked against the desired state
	// even when it does not change (crashed or stopped containers come back).
	Resync time.Duration
	// ReadyTimeout bounds the wait for a new container to answer on its port.
	ReadyTimeout time.Duration
	// NetworkPool is where installation networks' subnets are carved from
	// (default engine.DefaultNetworkPool), in /SubnetBits (default
	// engine.DefaultSubnetBits). Backs sharing an engine share the pool.
	NetworkPool netip.Prefix
	SubnetBits  int
	// PidsLimit bounds each container's processes (0: engine.DefaultPidsLimit).
	PidsLimit int64
	// SkipHostFirewall leaves the host firewall (package hostfw) to the
	// operator: for an engine on another machine, or rules managed there.
	// Without those rules containers reach the host's own services.
	SkipHostFirewall bool
	// DiskReserve is disk left free under Docker's data root when loading
	// an image (default DefaultDiskReserve).
	DiskReserve int64
	// ImageKeep is how long an image no instance uses stays loaded before
	// it is removed (Start's default DefaultImageKeep; 0 in a zero Config
	// removes at once): an installation scaled in and out again within it
	// starts from the loaded image instead of downloading it again.
	ImageKeep time.Duration
	// RawRelay relays the Fronts' tunnel connections to the containers
	// byte for byte, as Backs did before the HTTP gateway (package
	// back/gateway), which parses the Fronts' requests and sends them to
	// the container over keep-alive connections, so that Fronts may
	// pipeline. For a comparison or a fallback.
	RawRelay bool
	Logger   *slog.Logger
}

// DefaultImageKeep is ImageKeep's default, Nomad's image_delay.
const DefaultImageKeep = 3 * time.Minute

// DefaultDiskReserve is what a Back leaves free on the engine's disk: the
// lender's machine must keep working.
const DefaultDiskReserve = 512 << 20

// Back is a running Back agent.
type Back struct {
	cfg      Config
	log      *slog.Logger
	agent    *agent.Agent
	engine   *engine.Engine
	firewall *hostfw.Firewall

	mu       sync.Mutex
	desired  *agentproto.DesiredState
	reports  map[string]agentproto.InstanceReport
	forwards map[uint16]*meshnet.Forward // by port; parked with an empty allow-list when unused
	gateways map[uint16]*gateway.Gateway // by port: the forwards' HTTP gateways (none with RawRelay)
	health   map[string]*health          // by instance: started instances under continuous checks
	checker  *http.Client                // asks instances whether they answer
	wake     chan struct{}
	// unusedSince is when each of this host's images was first seen with
	// no instance using it (the converge loop's own).
	unusedSince map[string]time.Time
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
	cfg.Agent.Role = agentproto.RoleBack
	cfg.Agent.HTTPGateway = !cfg.RawRelay
	cfg.Agent.Logger = cfg.Logger
	if !cfg.PublishIP.IsValid() {
		cfg.PublishIP = netip.MustParseAddr("127.0.0.1")
	}
	if !cfg.PublishIP.IsLoopback() {
		return nil, fmt.Errorf("publish address %s is not a loopback address: containers are never exposed beyond the host", cfg.PublishIP)
	}
	if cfg.DiskReserve == 0 {
		cfg.DiskReserve = DefaultDiskReserve
	}
	if cfg.ImageKeep == 0 {
		cfg.ImageKeep = DefaultImageKeep
	}
	eng, err := engine.Connect(ctx, cfg.DockerHost, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if cfg.NetworkPool.IsValid() || cfg.SubnetBits != 0 {
		if err := eng.UseNetworkPool(cmp.Or(cfg.NetworkPool, engine.DefaultNetworkPool), cmp.Or(cfg.SubnetBits, engine.DefaultSubnetBits)); err != nil {
			eng.Close()
			return nil, err
		}
	}
	fw := &hostfw.Firewall{Interfaces: engine.BridgePrefix + "+"}
	if !cfg.SkipHostFirewall {
		if err := fw.Ensure(ctx); err != nil {
			eng.Close()
			return nil, fmt.Errorf("%w; the Back keeps containers away from the host with iptables and needs root or CAP_NET_ADMIN and CAP_NET_RAW for it (see docs/security.md)", err)
		}
	}
	if cfg.Agent.Measure == nil {
		cfg.Agent.Measure = measureEngine(eng, cfg.Agent.DataDir)
	}
	ag, err := agent.Start(ctx, cfg.Agent)
	if err != nil {
		eng.Close()
		return nil, err
	}
	b := &Back{
		cfg: cfg, log: cfg.Logger, agent: ag, engine: eng, firewall: fw,
		reports:  map[string]agentproto.InstanceReport{},
		forwards: map[uint16]*meshnet.Forward{},
		gateways: map[uint16]*gateway.Gateway{},
		health:   map[string]*health{},
		wake:     make(chan struct{}, 1),
		checker:  newChecker(),
	}
	ag.HandleFromCores("GET "+agentproto.PathLogs+"{instance}", http.HandlerFunc(b.serveLogs))
	return b, nil
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
	wg.Go(func() { b.monitor(loopCtx) })
	u := &usage{engine: b.engine, log: b.log, last: map[string]engine.Usage{}}
	wg.Go(func() {
		b.agent.ReportMetricsEvery(loopCtx, cmp.Or(b.cfg.MetricsInterval, agent.DefaultMetricsInterval), func(ctx context.Context) *agentproto.MetricsReport {
			b.mu.Lock()
			d := b.desired
			b.mu.Unlock()
			return u.report(ctx, b.agent.Identity().HostID, d)
		})
	})
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
		ctx := context.WithoutCancel(ctx)
		b.reconcile(ctx, agentproto.Empty())
		b.removeUnusedImages(ctx, b.agent.Identity().HostID, nil, 0) // standing down for good: keep nothing
	}
	return err
}

// Close releases the mesh node and the engine client.
func (b *Back) Close() error {
	b.mu.Lock()
	for _, f := range b.forwards {
		f.Close()
	}
	for _, g := range b.gateways {
		g.Close()
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
	// The core refuses a whole heartbeat with a longer message, which
	// would take the host down after the TTL for one chatty error.
	msg = truncate(msg, agentproto.MaxReportMessage)
	b.mu.Lock()
	prev, had := b.reports[id]
	b.reports[id] = agentproto.InstanceReport{ID: id, State: state, Message: msg}
	b.mu.Unlock()
	if !had || prev.State != state || prev.Message != msg {
		b.log.Info("instance state", "instance", id, "state", state, "message", msg)
	}
}

// truncate cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " …"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
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
			if g := b.gateways[port]; g != nil {
				g.CloseIdle()
			}
		}
	}
	for id := range b.reports {
		if _, ok := want[id]; !ok {
			delete(b.reports, id)
		}
	}
	for id := range b.health {
		if _, ok := want[id]; !ok {
			delete(b.health, id)
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
	host := b.agent.Identity().HostID
	b.removeUnusedImages(ctx, host, d.Instances, b.cfg.ImageKeep)
	if err := b.engine.RemoveUnusedNetworks(ctx, host); err != nil {
		b.log.Warn("could not remove unused installation networks", "err", err)
	}
}

func wantsPort(ins []agentproto.Instance, port uint16) bool {
	for _, in := range ins {
		if uint16(in.Port) == port {
			return true
		}
	}
	return false
}

// ensure brings one instance to running and exposes it. A new (or
// restarted) container must pass its health check within the grace; once it
// has, the monitor checks it from then on and reports its changes.
func (b *Back) ensure(ctx context.Context, in agentproto.Instance, existing engine.Container) {
	containerID, image, ip := existing.ID, existing.Image, existing.IP
	started := false
	if existing.ID == "" || !existing.Running() {
		b.unwatch(in.ID)
		started = true
		var err error
		image, err = b.ensureImage(ctx, in)
		if err != nil {
			b.report(in.ID, agentproto.InstanceFailed, err.Error())
			return
		}
		b.report(in.ID, agentproto.InstancePending, "starting container")
		if !b.cfg.SkipHostFirewall {
			// Cheap when present; back after a reboot or a firewall reload.
			if err := b.firewall.Ensure(ctx); err != nil {
				b.report(in.ID, agentproto.InstanceFailed, err.Error())
				return
			}
		}
		c, err := b.engine.Run(ctx, engine.Spec{
			Host: b.agent.Identity().HostID, HostIP: b.cfg.PublishIP, Installation: in.Installation, Instance: in.ID, App: in.App, Image: image,
			HostPort: uint16(in.Port), ContainerPort: uint16(in.ContainerPort),
			CPUs: float64(in.MilliCPU) / 1000, MemoryBytes: in.MemoryMB << 20, Env: in.Env,
			PidsLimit: b.cfg.PidsLimit, ReadOnlyRoot: in.ReadOnlyRoot,
		})
		if err != nil {
			b.report(in.ID, agentproto.InstanceFailed, err.Error())
			return
		}
		containerID, ip = c.ID, c.IP
	}
	if err := b.expose(ctx, in, ip); err != nil {
		b.report(in.ID, agentproto.InstanceFailed, err.Error())
		return
	}
	if !started && b.watched(in.ID) {
		return // the monitor has it
	}
	grace := b.cfg.ReadyTimeout
	if in.Health != nil && in.Health.Grace > 0 {
		grace = in.Health.Grace
	}
	if !started {
		// Adopted after a restart of the agent: it ran before, so it
		// answers now or it is not healthy.
		grace, image = min(grace, 3*time.Second), ""
	}
	if err := b.startupCheck(ctx, in, containerID, image, grace); err != nil {
		b.report(in.ID, agentproto.InstanceFailed, err.Error())
		return
	}
	if started {
		// It listens now: its own address may answer where it did not
		// before the start-up check.
		if err := b.expose(ctx, in, ip); err != nil {
			b.report(in.ID, agentproto.InstanceFailed, err.Error())
			return
		}
	}
	b.report(in.ID, agentproto.InstanceRunning, "")
	b.watch(in)
}

// expose forwards tunnel:PORT to the instance's container for the
// installation's Fronts: to the container's own address on its installation
// network when it answers there, with its published port as the fallback,
// else to the published port only. The direct path leaves docker-proxy, two
// loopback hops and a process of its own, out of every request.
func (b *Back) expose(ctx context.Context, in agentproto.Instance, ip netip.Addr) error {
	allowed := make([]netip.Addr, 0, len(in.AllowedFrom))
	for _, s := range in.AllowedFrom {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("core sent a bad Front address %q: %w", s, err)
		}
		allowed = append(allowed, a)
	}
	port := uint16(in.Port)
	targets := []string{b.target(in.Port)}
	if ip.IsValid() {
		direct := netip.AddrPortFrom(ip, uint16(in.ContainerPort)).String()
		b.mu.Lock()
		f := b.forwards[port]
		b.mu.Unlock()
		if (f != nil && f.Targets()[0] == direct) || reachable(ctx, direct) {
			targets = []string{direct, targets[0]}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.forwards[port]
	if !ok {
		var handler meshnet.ConnHandler
		if !b.cfg.RawRelay {
			g := gateway.New(gateway.Config{Logger: b.log.With("port", port)})
			b.gateways[port] = g
			handler = g.Serve
		}
		var err error
		if f, err = b.agent.Node().ForwardTo(port, targets[len(targets)-1], allowed, handler); err != nil {
			delete(b.gateways, port)
			return err
		}
		b.forwards[port] = f
	}
	f.SetAllowed(allowed)
	if !slices.Equal(f.Targets(), targets) {
		if err := f.SetTargets(targets...); err != nil {
			return err
		}
		if g := b.gateways[port]; g != nil {
			g.CloseIdle() // connections to the old container or address
		}
		b.log.Info("forwarding", "instance", in.ID, "port", port, "to", strings.Join(targets, " then "))
	}
	return nil
}

// reachable reports whether something accepts TCP connections at addr
// within a second.
func reachable(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: meshnet.FallbackDialTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// target is where an instance's container listens on this host.
func (b *Back) target(port int) string {
	return netip.AddrPortFrom(b.cfg.PublishIP, uint16(port)).String()
}

// blobRepo is the repository uploaded images are tagged into on a Back:
// potluck-blob/<host>/<digest prefix>. Named by the tarball's digest, so two
// apps never run each other's code and the loaded image is the cache; named
// by host, so a Back cleans up its own images only, never those of another
// Back sharing the engine. The tarball's own tags are never applied.
const blobRepo = "potluck-blob/"

// blobImage is the name the image of an uploaded tarball gets on host.
func blobImage(host, digest string) string {
	return blobRepo + hostKey(host) + "/" + strings.TrimPrefix(digest, "sha256:")[:24] + ":latest"
}

var refComponent = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// hostKey is host as a path component of an image name: the host ID when it
// is one already (the core's are, e.g. "h-1f2e3d4c5b6a"), else its hash.
func hostKey(host string) string {
	if len(host) <= 40 && refComponent.MatchString(host) {
		return host
	}
	sum := sha256.Sum256([]byte(host))
	return "h" + hex.EncodeToString(sum[:8])
}

// ensureImage returns the image to run: an uploaded tarball fetched over
// the tunnel (digest checked), checked to fit on the engine's disk and
// loaded under Potluck's name only, or a registry image pulled.
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
	if !digestPattern.MatchString(in.Digest) {
		return "", fmt.Errorf("core sent a bad image digest %q", in.Digest)
	}
	tag := blobImage(b.agent.Identity().HostID, in.Digest)
	if ok, err := b.engine.HasImage(ctx, tag); err != nil {
		return "", err
	} else if ok {
		return tag, nil
	}
	if in.ImageUncompressedBytes > 0 {
		// Refuse before downloading when the core already says it will not fit.
		if err := b.fitsOnDisk(ctx, in.ImageUncompressedBytes); err != nil {
			return "", err
		}
	}
	b.report(in.ID, agentproto.InstancePending, "fetching image")
	start := time.Now()
	path, size, err := b.fetchBlob(ctx, in)
	if err != nil {
		return "", err
	}
	b.log.Info("image downloaded", "digest", in.Digest, "bytes", size, "took", time.Since(start).Round(time.Millisecond))
	defer os.Remove(path) // once loaded, the engine's copy is the cache
	if err := b.checkUnpacked(ctx, path); err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	start = time.Now()
	if _, err := b.engine.LoadImageAs(ctx, f, tag); err != nil {
		return "", err
	}
	b.log.Info("image ready", "image", tag, "load_took", time.Since(start).Round(time.Millisecond))
	return tag, nil
}

// fetchBlob downloads an image tarball over the tunnel into the data
// directory, checking its digest, and refuses to fill the data directory's
// disk beyond the reserve.
func (b *Back) fetchBlob(ctx context.Context, in agentproto.Instance) (path string, size int64, err error) {
	dir := filepath.Join(b.cfg.Agent.DataDir, "blobs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	hexDigest := strings.TrimPrefix(in.Digest, "sha256:")
	var tmp *os.File
	defer func() {
		if tmp != nil {
			os.Remove(tmp.Name())
		}
	}()
	// Each attempt (one per core node) starts over in a new file.
	err = b.agent.Download(ctx, in.BlobPath, func(body io.Reader) error {
		if tmp != nil {
			os.Remove(tmp.Name())
		}
		room, err := agent.DiskFree(dir)
		if err != nil {
			return err
		}
		if tmp, err = os.CreateTemp(dir, ".download-*"); err != nil {
			return err
		}
		h := sha256.New()
		size, err = io.Copy(&cappedWriter{w: io.MultiWriter(tmp, h), left: room - b.cfg.DiskReserve}, body)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			if got := hex.EncodeToString(h.Sum(nil)); got != hexDigest {
				err = fmt.Errorf("digest sha256:%s, want %s", got, in.Digest)
			}
		}
		return err
	})
	if err != nil {
		return "", 0, fmt.Errorf("download image %s: %w", in.Digest, err)
	}
	path = tmp.Name()
	tmp = nil // the caller removes it once loaded
	return path, size, nil
}

// ErrDiskFull means an image does not fit on this host's disk.
var ErrDiskFull = errors.New("not enough free disk")

// cappedWriter fails with ErrDiskFull once more than left bytes come.
type cappedWriter struct {
	w    io.Writer
	left int64
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		return 0, fmt.Errorf("%w for the image download in the data directory", ErrDiskFull)
	}
	c.left -= int64(len(p))
	return c.w.Write(p)
}

// checkUnpacked counts what the tarball at path unpacks to (streaming,
// stopping at the free space) and refuses it when it would not leave the
// reserve free under Docker's data root.
func (b *Back) checkUnpacked(ctx context.Context, path string) error {
	room, where, err := b.engineDiskFree(ctx)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = imagetar.Inspect(f, room-b.cfg.DiskReserve)
	if errors.Is(err, imagetar.ErrUncompressedTooLarge) {
		return fmt.Errorf("%w under %s: the image unpacks to more than the %d bytes free there beyond the %d reserved (%v)", ErrDiskFull, where, max(room-b.cfg.DiskReserve, 0), b.cfg.DiskReserve, err)
	}
	if err != nil {
		return fmt.Errorf("image tarball: %w", err)
	}
	return nil
}

// fitsOnDisk refuses an image of need unpacked bytes that would not leave
// the reserve free under Docker's data root.
func (b *Back) fitsOnDisk(ctx context.Context, need int64) error {
	room, where, err := b.engineDiskFree(ctx)
	if err != nil {
		return err
	}
	if need > room-b.cfg.DiskReserve {
		return fmt.Errorf("%w under %s: the image unpacks to %d bytes, %d are free beyond the %d reserved", ErrDiskFull, where, need, max(room-b.cfg.DiskReserve, 0), b.cfg.DiskReserve)
	}
	return nil
}

// engineDiskFree is the free space under Docker's data root when it is on
// this machine, else under the data directory.
func (b *Back) engineDiskFree(ctx context.Context) (int64, string, error) {
	facts, err := b.engine.Facts(ctx)
	if err == nil && facts.RootDir != "" {
		if free, err := agent.DiskFree(facts.RootDir); err == nil {
			return free, facts.RootDir, nil
		}
	}
	free, err := agent.DiskFree(b.cfg.Agent.DataDir)
	return free, b.cfg.Agent.DataDir, err
}

// removeUnusedImages drops this host's uploaded images no instance here
// needs any more; other Backs' images on a shared engine are not its to
// remove.
func (b *Back) removeUnusedImages(ctx context.Context, host string, ins []agentproto.Instance, keepFor time.Duration) {
	keep := map[string]bool{}
	for _, in := range ins {
		// A malformed digest names no image here (ensureImage refuses it)
		// and is too short for blobImage.
		if digestPattern.MatchString(in.Digest) {
			keep[blobImage(host, in.Digest)] = true
		}
	}
	refs, err := b.engine.ImagesMatching(ctx, blobRepo+hostKey(host)+"/*")
	if err != nil {
		b.log.Warn("could not list images", "err", err)
		return
	}
	if b.unusedSince == nil {
		b.unusedSince = map[string]time.Time{}
	}
	now, unused := time.Now(), map[string]bool{}
	for _, ref := range refs {
		if keep[ref] {
			continue
		}
		unused[ref] = true
		since, ok := b.unusedSince[ref]
		if !ok {
			since = now
			b.unusedSince[ref] = now
		}
		if now.Sub(since) < keepFor {
			continue
		}
		b.log.Info("removing image no instance needs", "image", ref, "unused_for", now.Sub(since).Round(time.Second))
		if err := b.engine.RemoveImage(ctx, ref); err != nil {
			b.log.Warn("could not remove unused image", "err", err)
			continue
		}
		delete(b.unusedSince, ref)
	}
	for ref := range b.unusedSince {
		if !unused[ref] {
			delete(b.unusedSince, ref) // used again, or gone
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
			if g := b.gateways[port]; g != nil {
				st := g.Stats()
				mw.Counter("potluck_back_gateway_requests_total", "Requests the HTTP gateway sent to an instance.", l, st.Requests)
				mw.Gauge("potluck_back_gateway_in_flight", "Requests sent to an instance and not yet answered to the Front.", l, float64(st.InFlight))
				mw.Counter("potluck_back_gateway_failed_total", "Requests the instance refused or dropped; the Front's connection was closed so it tries another instance.", l, st.Failed)
				mw.Counter("potluck_back_gateway_malformed_total", "Requests answered 400, 408 or 431 by the gateway.", l, st.Malformed)
				mw.Counter("potluck_back_gateway_upgrades_total", "Upgrade (WebSocket) connections relayed raw.", l, st.Upgrades)
			}
		}
	}, func() map[string]any {
		return map[string]any{"instances": b.snapshotReports()}
	})
}
