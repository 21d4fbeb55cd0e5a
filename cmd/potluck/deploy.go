package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/internal/cli"
)

// deploy creates an installation, or rolls out a new release of the
// installation of that name, and by default waits until it serves.
type deploy struct {
	fs                *cli.FlagSet
	app, name, domain string
	fronts, backs     int
	cpus              float64
	memory, disk      string
	port              int
	env               cli.Repeated
	health            healthFlags
	detach            bool
	wait              time.Duration
	placement         placementFlags
	https             httpsFlags
}

// placementFlags are an installation's placement as flags.
type placementFlags struct {
	policy     string
	requires   cli.StringList
	spread     cli.StringList
	maxPerHost int
}

func (p *placementFlags) register(fs *cli.FlagSet) {
	fs.StringVar(&p.policy, "policy", "", "placement policy: spread (most free Back first) or pack (keep whole Backs free); default: the cluster's")
	fs.Var(&p.requires, "requires", "host features an instance needs, e.g. arch=amd64,storage=ssd (repeatable)")
	fs.Var(&p.spread, "spread", "at most N instances per value of a host feature, e.g. lender=1,region=2 (repeatable)")
	fs.IntVar(&p.maxPerHost, "max-per-host", 0, "instances that may share one Back (default 1)")
}

// request is the placement to send, or nil when no flag asks for one.
func (p *placementFlags) request() (*apiclient.Placement, error) {
	if p.policy == "" && len(p.requires) == 0 && len(p.spread) == 0 && p.maxPerHost == 0 {
		return nil, nil
	}
	out := &apiclient.Placement{Policy: p.policy, MaxPerHost: p.maxPerHost}
	for _, kv := range p.requires {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, cli.Usagef("--requires %q: want FEATURE=VALUE, e.g. arch=amd64", kv)
		}
		if out.Requires == nil {
			out.Requires = map[string]string{}
		}
		out.Requires[k] = v
	}
	for _, kv := range p.spread {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(v)
		if !ok || k == "" || err != nil || n < 1 {
			return nil, cli.Usagef("--spread %q: want FEATURE=MAX, e.g. lender=1", kv)
		}
		out.Spread = append(out.Spread, apiclient.Spread{By: k, Max: n})
	}
	if p.maxPerHost < 0 {
		return nil, cli.Usagef("--max-per-host must be at least 1")
	}
	return out, nil
}

// healthFlags are an installation's health check as flags.
type healthFlags struct {
	path                     string
	interval, timeout, grace time.Duration
	healthy, unhealthy       int
}

func (h *healthFlags) register(fs *cli.FlagSet) {
	fs.StringVar(&h.path, "health-path", "", "HTTP path the Back checks, e.g. /healthz (default /)")
	fs.DurationVar(&h.interval, "health-interval", 0, "time between checks of a running instance (default 10s)")
	fs.DurationVar(&h.timeout, "health-timeout", 0, "time a check may take (default 2s)")
	fs.DurationVar(&h.grace, "health-grace", 0, "time a new instance has to answer at start (default 60s)")
	fs.IntVar(&h.healthy, "healthy-threshold", 0, "checks in a row that make an instance healthy again (default 1)")
	fs.IntVar(&h.unhealthy, "unhealthy-threshold", 0, "failed checks in a row that make an instance unhealthy (default 3)")
}

// request is the health check to send, nil when no flag was given.
func (h *healthFlags) request() *apiclient.HealthCheck {
	if *h == (healthFlags{}) {
		return nil
	}
	d := func(v time.Duration) string {
		if v == 0 {
			return ""
		}
		return v.String()
	}
	return &apiclient.HealthCheck{Path: h.path, Interval: d(h.interval), Timeout: d(h.timeout), Grace: d(h.grace), Healthy: h.healthy, Unhealthy: h.unhealthy}
}

func (d *deploy) register(fs *cli.FlagSet) {
	d.fs = fs
	fs.StringVar(&d.app, "app", "", "app to run (required for a new installation; default for a release: the live one's)")
	fs.StringVar(&d.name, "name", "", "installation name (default: the app name); an existing one gets a new release")
	fs.IntVar(&d.fronts, "fronts", 1, "number of Fronts (1-64)")
	fs.IntVar(&d.backs, "backs", 1, "number of Backs, one instance each (1-256)")
	fs.StringVar(&d.domain, "domain", "", "domain the Fronts serve it on (required for a new installation)")
	fs.Float64Var(&d.cpus, "cpus", 0.5, "CPUs per instance, e.g. 0.25 or 2")
	fs.StringVar(&d.memory, "memory", "", "memory per instance, e.g. 256MiB or 1GiB (default 256MiB)")
	fs.StringVar(&d.disk, "disk", "", "disk per instance, e.g. 100MiB (default: the image size)")
	fs.IntVar(&d.port, "port", 0, "container port (default: the app's)")
	fs.Var(&d.env, "env", "environment variable K=V for the container (repeatable; for a release, replaces the whole environment)")
	d.health.register(fs)
	d.placement.register(fs)
	d.https.register(fs)
	fs.BoolVar(&d.detach, "detach", false, "return once the core accepted it, without waiting for the instances")
	fs.DurationVar(&d.wait, "wait", 10*time.Minute, "how long to wait for the instances before giving up (exit 1)")
}

// set reports whether flag name was given (on the command line or by its
// environment twin).
func (d *deploy) set(name string) bool {
	found := false
	d.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func (d *deploy) run(c *cmdCtx) error {
	placement, err := d.placement.request()
	if err != nil {
		return err // bad placement flags, before anything is sent
	}
	name := d.name
	if name == "" {
		name = d.app
	}
	if name == "" {
		return cli.Usagef("deploy needs --app (and --name to update an installation of another name)")
	}
	if d.cpus < minCPUs {
		return cli.Usagef("--cpus %g: at least %g, e.g. 0.5", d.cpus, minCPUs)
	}
	memory, err := sizeFlag("memory", d.memory)
	if err != nil {
		return err
	}
	if memory != 0 && memory < minMemoryMiB {
		return cli.Usagef("--memory %s: at least %dMiB (the Docker Engine's minimum)", d.memory, minMemoryMiB)
	}
	disk, err := sizeFlag("disk", d.disk)
	if err != nil {
		return err
	}
	var env map[string]string
	if len(d.env) > 0 {
		env = map[string]string{}
		for _, kv := range d.env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return cli.Usagef("--env %q: want KEY=VALUE", kv)
			}
			env[k] = v
		}
	}
	tlsReq, err := d.https.request()
	if err != nil {
		return err
	}
	cur, _, err := c.client.Installation(c.ctx, name, nil)
	if apiclient.StatusOf(err) == 404 {
		return d.create(c, apiclient.CreateInstallationRequest{
			App: d.app, Name: name, Domain: d.domain, Fronts: d.fronts, Backs: d.backs, CPUs: d.cpus,
			MemoryMB: memory, DiskMB: disk, Env: env, ContainerPort: d.port, Health: d.health.request(), Placement: placement,
		}, tlsReq)
	}
	if err != nil {
		return err
	}
	if tlsReq != nil {
		in, err := c.client.SetInstallationTLS(c.ctx, name, *tlsReq)
		if err != nil {
			return inFlagTerms(err, httpsFlagTerms)
		}
		if !c.g.json {
			fmt.Fprintf(c.env.Stdout, "installation %s: %s\n", name, or(httpsSummary(in), "https: off"))
		}
		if !d.releaseFlagsGiven() {
			if c.g.json {
				return printJSON(c.env.Stdout, in)
			}
			return nil // only HTTPS changed: no new release
		}
	}
	// An existing installation: a new release.
	if d.domain != "" && d.domain != cur.Domain {
		return cli.Usagef("installation %s serves %s; a release cannot change the domain (deploy another installation for %s)", name, cur.Domain, d.domain)
	}
	if (d.set("fronts") && d.fronts != cur.Fronts) || (d.set("backs") && d.backs != cur.Backs) {
		return cli.Usagef("a release keeps the number of Fronts and Backs; change them with: potluck installations scale %s --fronts N --backs N", name)
	}
	req := apiclient.DeployRequest{App: d.app, MemoryMB: memory, DiskMB: disk, Env: env, ContainerPort: d.port, Health: d.health.request()}
	if d.set("cpus") {
		req.CPUs = d.cpus
	}
	in, err := c.client.Deploy(c.ctx, name, req)
	if err != nil {
		return inFlagTerms(err, deployFlags)
	}
	rel := latestRelease(in)
	if c.g.json && d.detach {
		return printJSON(c.env.Stdout, in)
	}
	if !c.g.json {
		fmt.Fprintf(c.env.Stdout, "installation %s: release %d (%s) rolling out beside release %d\n", name, rel.Version, releaseApp(rel), in.Release)
	}
	if d.detach {
		return nil
	}
	return d.waitRelease(c, name, rel.Version)
}

func (d *deploy) create(c *cmdCtx, req apiclient.CreateInstallationRequest, tlsReq *apiclient.TLSRequest) error {
	if req.App == "" {
		return cli.Usagef("deploy needs --app")
	}
	if req.Domain == "" {
		return cli.Usagef("deploy needs --domain")
	}
	if tlsReq != nil && tlsReq.Mode != "manual" {
		req.TLS = tlsReq
	}
	in, err := c.client.CreateInstallation(c.ctx, req)
	if err != nil {
		return inFlagTerms(err, deployFlags)
	}
	if tlsReq != nil && tlsReq.Mode == "manual" {
		// The certificate is checked against the domain and stored
		// sealed once the installation exists.
		if in, err = c.client.SetInstallationTLS(c.ctx, req.Name, *tlsReq); err != nil {
			return fmt.Errorf("installation %s created, but its certificate was refused (run deploy again with fixed --tls-cert/--tls-key): %w", req.Name, inFlagTerms(err, httpsFlagTerms))
		}
	}
	if c.g.json && d.detach {
		return printJSON(c.env.Stdout, in)
	}
	if !c.g.json {
		fmt.Fprintf(c.env.Stdout, "installation %s created: %s on %d back(s) behind %d front(s), %s\n", in.Name, in.App, in.Backs, in.Fronts, in.URL)
	}
	if d.detach {
		if c.g.json {
			return nil
		}
		fmt.Fprintln(c.env.Stdout)
		return instanceTable(c.env.Stdout, in.Instances)
	}
	return d.waitCreated(c, req.Name)
}

// waitCreated follows a new installation until every instance runs, or
// one failed.
func (d *deploy) waitCreated(c *cmdCtx, name string) error {
	return d.follow(c, name, func(in *apiclient.Installation) (bool, error) {
		for _, i := range in.Instances {
			if i.State == "failed" {
				return true, fmt.Errorf("instance %s on %s failed: %s (the installation stays; fix it and deploy again, or potluck installations rm %s)", i.ID, or(i.HostName, i.HostID), or(i.Message, "no reason given"), name)
			}
		}
		return len(in.Instances) >= in.Backs && running(in.Instances) >= in.Backs, nil
	}, func(in *apiclient.Installation) string {
		return fmt.Sprintf("serving on %d instance(s): %s", running(in.Instances), in.URL)
	})
}

// waitRelease follows a rollout until the release is live or failed.
func (d *deploy) waitRelease(c *cmdCtx, name string, version int) error {
	return d.follow(c, name, func(in *apiclient.Installation) (bool, error) {
		for _, r := range in.Releases {
			if r.Version != version {
				continue
			}
			switch r.Status {
			case "live":
				return true, nil
			case "failed":
				return true, fmt.Errorf("release %d failed: %s; release %d keeps serving", version, or(r.Message, "no reason given"), in.Release)
			case "superseded":
				return true, nil
			}
			return false, nil
		}
		return true, fmt.Errorf("release %d is no longer remembered", version)
	}, func(in *apiclient.Installation) string {
		return fmt.Sprintf("release %d is live on %d instance(s): %s", version, in.Backs, in.URL)
	})
}

// follow prints each instance's state as it changes (blocking queries on
// the installation) until done says so, or --wait passes.
func (d *deploy) follow(c *cmdCtx, name string, done func(*apiclient.Installation) (bool, error), success func(*apiclient.Installation) string) error {
	ctx, cancel := context.WithTimeout(c.ctx, d.wait)
	defer cancel()
	seen := map[string]string{}
	var index uint64
	var last *apiclient.Installation
	for {
		in, meta, err := c.client.Installation(ctx, name, &apiclient.Query{Index: index, Wait: 30 * time.Second})
		if ctx.Err() != nil {
			if c.ctx.Err() != nil {
				return c.ctx.Err()
			}
			return fmt.Errorf("not serving after %s (--wait); the core goes on: potluck installations show %s%s", d.wait, name, lastStates(last))
		}
		if err != nil {
			if apiclient.StatusOf(err) == 404 {
				return fmt.Errorf("installation %s was deleted meanwhile", name)
			}
			return err
		}
		index, last = meta.Index, in
		if !c.g.json {
			printProgress(c.env.Stdout, in, seen)
		}
		ok, err := done(in)
		if !ok {
			continue
		}
		if err != nil {
			return err
		}
		if c.g.json {
			return printJSON(c.env.Stdout, in)
		}
		fmt.Fprintln(c.env.Stdout, success(in))
		return nil
	}
}

// printProgress prints one line per instance whose state or message changed.
func printProgress(w io.Writer, in *apiclient.Installation, seen map[string]string) {
	ins := append([]apiclient.Instance(nil), in.Instances...)
	sort.Slice(ins, func(i, j int) bool { return ins[i].ID < ins[j].ID })
	for _, i := range ins {
		line := fmt.Sprintf("  %s on %s (release %d): %s", i.ID, or(i.HostName, i.HostID), max(i.Release, 1), i.State)
		if i.Message != "" {
			line += " - " + i.Message
		}
		if seen[i.ID] != line {
			seen[i.ID] = line
			fmt.Fprintf(w, "%s %s\n", time.Now().Format(time.TimeOnly), line)
		}
	}
}

func lastStates(in *apiclient.Installation) string {
	if in == nil {
		return ""
	}
	var s []string
	for _, i := range in.Instances {
		s = append(s, i.ID+" "+i.State)
	}
	return " (" + strings.Join(s, ", ") + ")"
}

// latestRelease is the installation's newest release.
func latestRelease(in *apiclient.Installation) apiclient.Release {
	var r apiclient.Release
	for _, x := range in.Releases {
		if x.Version > r.Version {
			r = x
		}
	}
	return r
}

func releaseApp(r apiclient.Release) string {
	return r.App + " v" + strconv.Itoa(max(r.AppVersion, 1))
}

func cmdReleases(c *cmdCtx) error {
	rs, err := c.client.Releases(c.ctx, c.args[0])
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, rs)
	}
	var rows [][]string
	for _, r := range rs {
		status := r.Status
		if r.Live {
			status = "live"
		}
		var env []string
		for k, v := range r.Env {
			env = append(env, k+"="+v)
		}
		sort.Strings(env)
		rows = append(rows, []string{"v" + strconv.Itoa(r.Version), status, releaseApp(r.Release),
			cpus(r.PerInstance.MilliCPU) + " cpu, " + mib(r.PerInstance.MemoryMB), strconv.Itoa(r.ContainerPort),
			fmt.Sprintf("%d/%d", r.Running, r.Instances), or(strings.Join(env, " "), "-"), or(or(r.Message, r.Description), "-"), age(r.CreatedAt)})
	}
	return table(c.env.Stdout, []string{"RELEASE", "STATUS", "APP", "PER INSTANCE", "PORT", "RUNNING", "ENV", "NOTE", "AGE"}, rows)
}

// rollback rolls out an earlier release's settings as a new release.
type rollback struct {
	detach bool
	wait   time.Duration
}

func (r *rollback) register(fs *cli.FlagSet) {
	fs.BoolVar(&r.detach, "detach", false, "return once the core accepted it, without waiting for the instances")
	fs.DurationVar(&r.wait, "wait", 10*time.Minute, "how long to wait for the instances before giving up (exit 1)")
}

func (r *rollback) run(c *cmdCtx) error {
	name, version := c.args[0], 0
	if len(c.args) > 1 {
		v, err := strconv.Atoi(strings.TrimPrefix(c.args[1], "v"))
		if err != nil || v < 1 {
			return cli.Usagef("rollback %s %s: VERSION is a release number such as 3 (see potluck releases %s)", name, c.args[1], name)
		}
		version = v
	}
	in, err := c.client.Rollback(c.ctx, name, version)
	if err != nil {
		return err
	}
	rel := latestRelease(in)
	if !c.g.json {
		fmt.Fprintf(c.env.Stdout, "installation %s: release %d (%s) rolling out beside release %d\n", name, rel.Version, or(rel.Description, releaseApp(rel)), in.Release)
	}
	if r.detach {
		if c.g.json {
			return printJSON(c.env.Stdout, in)
		}
		return nil
	}
	d := &deploy{wait: r.wait}
	return d.waitRelease(c, name, rel.Version)
}

// deployingRelease is the release rolling out, if any.
func deployingRelease(in *apiclient.Installation) *apiclient.Release {
	for i := range in.Releases {
		if in.Releases[i].Status == "deploying" {
			return &in.Releases[i]
		}
	}
	return nil
}

// releaseFlagsGiven reports whether a flag that makes a new release was
// given (as opposed to HTTPS settings alone).
func (d *deploy) releaseFlagsGiven() bool {
	for _, n := range []string{"app", "cpus", "memory", "disk", "port", "env", "health-path", "health-interval", "health-timeout", "health-grace", "healthy-threshold", "unhealthy-threshold"} {
		if d.set(n) {
			return true
		}
	}
	return false
}
