// Package engine runs Potluck instances as containers through the Docker
// Engine API: images loaded from untrusted `docker save` tarballs under
// Potluck's own name only, or pulled; containers on a network of their
// installation's own, published on 127.0.0.1 only, hardened (capabilities,
// no-new-privileges, pids, log rotation, optionally a read-only root), with
// cpu and memory limits and labels that tie each container to its
// installation and instance so a restarted Back can adopt them instead of
// starting duplicates.
package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// MinAPIVersion is the oldest Engine API this package is tested with
// (Docker 20.10, Debian 12's docker.io).
const MinAPIVersion = "1.41"

// Labels Potluck puts on every container it runs.
const (
	LabelManaged      = "io.potluck.managed"
	LabelHost         = "io.potluck.host"
	LabelInstallation = "io.potluck.installation"
	LabelInstance     = "io.potluck.instance"
	LabelApp          = "io.potluck.app"
	LabelPort         = "io.potluck.port"
)

// ErrUnreachable wraps every failure to reach the engine.
var ErrUnreachable = errors.New("docker engine unreachable")

// Engine is a connection to one Docker Engine.
type Engine struct {
	cli        *client.Client
	log        *slog.Logger
	pool       netip.Prefix // installation subnets are carved from it
	subnetBits int
}

// Connect opens a client for host ("" means DOCKER_HOST or the default unix
// socket), negotiates the API version and refuses an engine older than
// MinAPIVersion, saying so.
func Connect(ctx context.Context, host string, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ping, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w at %s: %v (is dockerd running? scripts/docker-up.sh starts it)", ErrUnreachable, cli.DaemonHost(), err)
	}
	if ping.APIVersion != "" && versionLess(ping.APIVersion, MinAPIVersion) {
		cli.Close()
		return nil, fmt.Errorf("docker engine at %s speaks API %s; Potluck needs %s or newer (Docker 20.10+)", cli.DaemonHost(), ping.APIVersion, MinAPIVersion)
	}
	return &Engine{cli: cli, log: log, pool: DefaultNetworkPool, subnetBits: DefaultSubnetBits}, nil
}

// versionLess compares dotted API versions numerically ("1.9" < "1.41").
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// Close releases the client.
func (e *Engine) Close() error { return e.cli.Close() }

// APIVersion is the negotiated Engine API version.
func (e *Engine) APIVersion() string { return e.cli.ClientVersion() }

// PullImage pulls ref from its registry.
func (e *Engine) PullImage(ctx context.Context, ref string) error {
	res, err := e.cli.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("docker pull %s: %w", ref, err)
	}
	defer res.Close()
	if err := res.Wait(ctx); err != nil {
		return fmt.Errorf("docker pull %s: %w", ref, err)
	}
	return nil
}

// HasImage reports whether the engine has ref locally.
func (e *Engine) HasImage(ctx context.Context, ref string) (bool, error) {
	_, err := e.cli.ImageInspect(ctx, ref)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, fmt.Errorf("docker image inspect %s: %w", ref, err)
}

// RemoveImage deletes an image no container uses any more. An image that
// is gone already is not an error.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("docker rmi %s: %w", ref, err)
	}
	return nil
}

// Spec is one instance to run.
type Spec struct {
	// Host is the Potluck host that owns the container. Several Backs may
	// share one engine (a test or a demo on one machine); each manages only
	// its own containers.
	Host          string
	Installation  string
	Instance      string
	App           string
	Image         string
	HostPort      uint16     // published on HostIP only
	HostIP        netip.Addr // a loopback address; zero means 127.0.0.1
	ContainerPort uint16
	CPUs          float64 // 0: no limit
	MemoryBytes   int64   // 0: no limit
	// PidsLimit bounds the container's processes and threads; 0 means
	// DefaultPidsLimit.
	PidsLimit int64
	// ReadOnlyRoot mounts the image's filesystem read-only, with a
	// writable tmpfs on /tmp (volumes the image declares stay writable).
	ReadOnlyRoot bool
	Env          map[string]string
}

func (s Spec) validate() error {
	switch {
	case s.Instance == "" || s.Installation == "" || s.Host == "":
		return errors.New("spec: host, installation and instance are required")
	case s.HostIP.IsValid() && !s.HostIP.IsLoopback():
		return fmt.Errorf("spec: containers are published on loopback only, not %s", s.HostIP)
	case s.Image == "":
		return errors.New("spec: image is required")
	case s.HostPort == 0 || s.ContainerPort == 0:
		return errors.New("spec: host and container ports are required")
	case s.CPUs < 0 || s.MemoryBytes < 0 || s.PidsLimit < 0:
		return errors.New("spec: cpu, memory and pids limits must not be negative")
	case s.MemoryBytes > 0 && s.MemoryBytes < 6<<20:
		return fmt.Errorf("spec: memory limit %d bytes is below Docker's minimum of 6 MiB", s.MemoryBytes)
	}
	return nil
}

// ContainerName is the name an instance's container gets: unique per
// instance, so a second create of the same instance fails instead of
// duplicating it.
func ContainerName(instance string) string { return "potluck-" + instance }

// Container is a Potluck-managed container as the engine reports it.
type Container struct {
	ID           string
	Name         string
	Host         string
	Installation string
	Instance     string
	App          string
	Image        string
	HostPort     uint16
	Network      string // the network it is attached to
	// IP is its address on that network (invalid when it has none, e.g.
	// stopped): the Back reaches it there directly, without docker-proxy.
	IP netip.Addr
	// PublishIP is the host address its port is published on (valid
	// while it runs).
	PublishIP netip.Addr
	State     string // created, running, exited, ...
	Status    string // human text, e.g. "Up 3 minutes"
}

// Running reports whether the container's process is up.
func (c Container) Running() bool { return c.State == "running" }

// Run creates and starts the instance's container. If the instance's
// container already exists (a restarted Back) it is started if needed and
// returned, never duplicated.
func (e *Engine) Run(ctx context.Context, s Spec) (Container, error) {
	if err := s.validate(); err != nil {
		return Container{}, err
	}
	if c, ok, err := e.find(ctx, s.Instance); err != nil {
		return Container{}, err
	} else if ok && c.Network != NetworkName(s.Host, s.Installation) {
		// Made by a release before installation networks and hardening:
		// adopting it would keep it on the shared bridge. Make it anew.
		e.log.Info("recreating a container made by an earlier release", "instance", s.Instance, "network", c.Network)
		if err := e.Remove(ctx, c.ID, 10*time.Second); err != nil {
			return Container{}, err
		}
	} else if ok {
		if !c.Running() {
			if _, err := e.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
				return Container{}, fmt.Errorf("docker start %s: %w", c.Name, err)
			}
			c.State = "running"
		}
		return c, nil
	}
	ctrPort, ok := network.PortFrom(s.ContainerPort, network.TCP)
	if !ok {
		return Container{}, fmt.Errorf("spec: container port %d invalid", s.ContainerPort)
	}
	env := make([]string, 0, len(s.Env)+1)
	for k, v := range s.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	env = append(env, "POTLUCK_INSTANCE="+s.Instance)
	nw, err := e.ensureNetwork(ctx, s.Host, s.Installation)
	if err != nil {
		return Container{}, err
	}
	hc := hardened(s)
	hc.NetworkMode = container.NetworkMode(nw.Name)
	hc.PortBindings = network.PortMap{ctrPort: {{
		HostIP:   cmp.Or(s.HostIP, netip.MustParseAddr("127.0.0.1")),
		HostPort: strconv.Itoa(int(s.HostPort)),
	}}}
	// The engine restarts crashed containers and brings them back after its
	// own restart, even while the Back or the core is away.
	hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
	hc.Resources.NanoCPUs = int64(s.CPUs * 1e9)
	hc.Resources.Memory = s.MemoryBytes
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: ContainerName(s.Instance),
		Config: &container.Config{
			Image:        s.Image,
			Env:          env,
			ExposedPorts: network.PortSet{ctrPort: struct{}{}},
			Labels: map[string]string{
				LabelManaged:      "true",
				LabelHost:         s.Host,
				LabelInstallation: s.Installation,
				LabelInstance:     s.Instance,
				LabelApp:          s.App,
				LabelPort:         strconv.Itoa(int(s.HostPort)),
			},
		},
		HostConfig:       hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{nw.Name: {}}},
	})
	if err != nil {
		e.removeNetworkIfUnused(context.WithoutCancel(ctx), nw.Name) // made for nothing
		return Container{}, fmt.Errorf("docker create %s: %w", ContainerName(s.Instance), err)
	}
	if _, err := e.cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		// Do not leave a half-made instance behind.
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		e.cli.ContainerRemove(rmCtx, res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		e.removeNetworkIfUnused(rmCtx, nw.Name)
		return Container{}, fmt.Errorf("docker start %s: %w", ContainerName(s.Instance), err)
	}
	c, _, err := e.find(ctx, s.Instance)
	if err != nil {
		return Container{}, err
	}
	e.log.Info("container started", "instance", s.Instance, "image", s.Image, "port", s.HostPort)
	return c, nil
}

func (e *Engine) find(ctx context.Context, instance string) (Container, bool, error) {
	cs, err := e.list(ctx, client.Filters{}.Add("label", LabelInstance+"="+instance))
	if err != nil || len(cs) == 0 {
		return Container{}, false, err
	}
	return cs[0], true, nil
}

// List returns the Potluck-managed containers of host ("" for every
// host's), running or not.
func (e *Engine) List(ctx context.Context, host string) ([]Container, error) {
	return e.list(ctx, managedBy(host))
}

// managedBy selects what Potluck made for host ("" for every host's).
func managedBy(host string) client.Filters {
	f := client.Filters{}.Add("label", LabelManaged+"=true")
	if host != "" {
		f = f.Add("label", LabelHost+"="+host)
	}
	return f
}

func (e *Engine) list(ctx context.Context, f client.Filters) ([]Container, error) {
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker ps: %w", err)
	}
	out := make([]Container, 0, len(res.Items))
	for _, s := range res.Items {
		port, _ := strconv.ParseUint(s.Labels[LabelPort], 10, 16)
		name := ""
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		c := Container{
			ID: s.ID, Name: name, Image: s.Image, State: string(s.State), Status: s.Status,
			Host: s.Labels[LabelHost], Installation: s.Labels[LabelInstallation], Instance: s.Labels[LabelInstance],
			App: s.Labels[LabelApp], HostPort: uint16(port), Network: s.HostConfig.NetworkMode,
		}
		if s.NetworkSettings != nil {
			if ep := s.NetworkSettings.Networks[c.Network]; ep != nil {
				c.IP = ep.IPAddress
			}
		}
		for _, p := range s.Ports {
			if p.PublicPort != 0 && p.IP.IsValid() {
				c.PublishIP = p.IP
				break
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}

// Stop stops a container, giving it grace to exit on SIGTERM.
func (e *Engine) Stop(ctx context.Context, id string, grace time.Duration) error {
	secs := int(grace / time.Second)
	if _, err := e.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs}); err != nil && !isNotFound(err) {
		return fmt.Errorf("docker stop %s: %w", id, err)
	}
	return nil
}

// Remove stops (with grace) and removes a container with its anonymous
// volumes, and its installation network once no container is left on it. A
// container that is gone already is not an error.
func (e *Engine) Remove(ctx context.Context, id string, grace time.Duration) error {
	insp, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("docker inspect %s: %w", id, err)
	}
	if err := e.Stop(ctx, id, grace); err != nil {
		return err
	}
	if _, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
		return fmt.Errorf("docker rm %s: %w", id, err)
	}
	if l := insp.Container.Config.Labels; l[LabelManaged] == "true" && l[LabelHost] != "" && l[LabelInstallation] != "" {
		return e.removeNetworkIfUnused(ctx, NetworkName(l[LabelHost], l[LabelInstallation]))
	}
	return nil
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// LogOptions select a container's log lines.
type LogOptions struct {
	Follow bool
	Since  time.Time // zero: from the start of what the engine keeps
	Tail   int       // last N lines; 0: all
}

// ErrNoContainer means the host runs no container for an instance.
var ErrNoContainer = errors.New("no container for this instance on this host")

// Logs streams the stdout and stderr of host's container for instance,
// each line prefixed with its RFC 3339 timestamp. Docker's json-file driver
// keeps them, rotated (see Spec's limits), until the container is removed.
func (e *Engine) Logs(ctx context.Context, host, instance string, o LogOptions) (io.ReadCloser, error) {
	c, ok, err := e.find(ctx, instance)
	if err != nil {
		return nil, err
	}
	if !ok || c.Host != host {
		return nil, ErrNoContainer
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true, Follow: o.Follow}
	if !o.Since.IsZero() {
		opts.Since = strconv.FormatInt(o.Since.Unix(), 10)
	}
	if o.Tail > 0 {
		opts.Tail = strconv.Itoa(o.Tail)
	}
	rc, err := e.cli.ContainerLogs(ctx, c.ID, opts)
	if err != nil {
		return nil, fmt.Errorf("docker logs %s: %w", c.Name, err)
	}
	// Without a TTY the engine multiplexes stdout and stderr in frames.
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		rc.Close()
		pw.CloseWithError(err)
	}()
	return &logStream{PipeReader: pr, src: rc}, nil
}

type logStream struct {
	*io.PipeReader
	src io.Closer
}

func (l *logStream) Close() error {
	l.src.Close()
	return l.PipeReader.Close()
}

// Exited reports whether container id has stopped, with its exit code; a
// container the engine is restarting after a crash (the restart policy)
// counts as exited.
func (e *Engine) Exited(ctx context.Context, id string) (bool, int, error) {
	insp, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return false, 0, fmt.Errorf("docker inspect %s: %w", id, err)
	}
	st := insp.Container.State
	if st == nil || (st.Running && !st.Restarting) {
		return false, 0, nil
	}
	return true, st.ExitCode, nil
}

// TagImage gives image src the additional reference dst.
func (e *Engine) TagImage(ctx context.Context, src, dst string) error {
	if _, err := e.cli.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: dst}); err != nil {
		return fmt.Errorf("docker tag %s %s: %w", src, dst, err)
	}
	return nil
}
