package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"potluck/apiclient"
	"potluck/internal/cli"
	"potluck/internal/human"
	"potluck/internal/version"
)

func commands() []command {
	return []command{
		{path: "status", short: "show the core cluster: nodes, leader, counts", cmd: action(cmdStatus)},

		{path: "cluster members", short: "list the core nodes of the raft group with role and version", cmd: action(cmdClusterMembers)},
		{path: "cluster add", args: "ID RAFT_ADDRESS", nargs: 2, short: "add a core node (started with an empty --data-dir and --join) as a voter", cmd: action(cmdClusterAdd)},
		{path: "cluster remove", args: "ID", nargs: 1, short: "remove a core node from the raft group; it stops serving and exits", cmd: action(cmdClusterRemove)},
		{path: "cluster placement", args: "[spread|pack]", optional: 1, short: "show or set the placement policy of installations that name none", cmd: action(cmdClusterPlacement)},

		{path: "hosts ls", short: "list hosts with status and free capacity", cmd: &listCmd{list: cmdHostsLs}},
		{path: "hosts show", args: "HOST", nargs: 1, short: "show one host (id or name)", cmd: action(cmdHostsShow)},
		{path: "hosts label", args: "HOST", nargs: 1, short: "set who lends a host and its labels, which --requires and --spread can name", cmd: &hostsLabel{}},
		{path: "hosts rm", args: "HOST", nargs: 1, short: "decommission a host: drain its instances to other hosts, then revoke its key", cmd: action(cmdHostsRm)},

		{path: "tokens create", short: "create a join token for a new host, or an app-owner or read-only token (the secret is printed once)", cmd: &tokensCreate{}},
		{path: "tokens ls", short: "list join and scoped tokens (no secrets)", cmd: &listCmd{list: cmdTokensLs}},
		{path: "tokens revoke", args: "ID", nargs: 1, short: "revoke a join or scoped token", cmd: action(cmdTokensRevoke)},
		{path: "tokens rotate-operator", short: "replace the operator token; the old one keeps working for --grace (the new one is printed once)", cmd: &tokensRotate{}},

		{path: "apps push", args: "FILE", nargs: 1, short: "upload a `docker save` tarball as an app", cmd: &appsPush{}},
		{path: "apps ls", short: "list apps", cmd: &listCmd{list: cmdAppsLs}},
		{path: "apps show", args: "APP", nargs: 1, short: "show one app", cmd: action(cmdAppsShow)},
		{path: "apps rm", args: "APP", nargs: 1, short: "delete an app no installation uses", cmd: action(cmdAppsRm)},

		{path: "deploy", short: "run an app on Backs behind Fronts, or roll out a new release of an installation; waits until it serves", cmd: &deploy{}},
		{path: "logs", args: "NAME", nargs: 1, short: "print an installation's container logs (-f to follow)", cmd: &logsCmd{}},
		{path: "releases", args: "NAME", nargs: 1, short: "list an installation's releases, newest first", cmd: action(cmdReleases)},
		{path: "rollback", args: "NAME [VERSION]", nargs: 1, optional: 1, short: "roll out the settings of an earlier release (default: the one live before)", cmd: &rollback{}},

		{path: "autoscale", args: "NAME", nargs: 1, short: "show or set an installation's autoscaling (--min --max --cpu-target --interval; --off)", cmd: &autoscaleCmd{}},
		{path: "metrics", args: "NAME", nargs: 1, short: "print an installation's latest metrics: requests, 5xx, latency, CPU and memory per step", cmd: &metricsCmd{}},

		{path: "installations ls", short: "list installations with their instances", cmd: &listCmd{list: cmdInstLs}},
		{path: "installations show", args: "NAME", nargs: 1, short: "show one installation: Fronts, instances and their state", cmd: &instShow{}},
		{path: "installations scale", args: "NAME", nargs: 1, short: "change the number of Fronts and/or Backs", cmd: &instScale{}},
		{path: "installations rm", args: "NAME", nargs: 1, short: "delete an installation (stops its containers)", cmd: action(cmdInstRm)},

		{path: "containers ls", short: "list every container (instance) with host, port and state", cmd: &listCmd{list: cmdContainersLs}},
	}
}

// table prints aligned columns.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func cpus(milli int64) string { return strconv.FormatFloat(float64(milli)/1000, 'f', -1, 64) }

func mib(mb int64) string { return strconv.FormatInt(mb, 10) + "MiB" }

func age(t time.Time) string { return human.Age(t, time.Now()) }

// ---- status ----

func cmdStatus(c *cmdCtx) error {
	st, err := c.client.Status(c.ctx)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, st)
	}
	w := c.env.Stdout
	fmt.Fprintf(w, "node %s (%s), leader %s, health %s, state index %d\n", st.Node, st.RaftState, or(st.Leader, "-"), st.Health, st.StateIndex)
	var hosts []string
	for _, k := range sortedKeys(st.Hosts) {
		hosts = append(hosts, fmt.Sprintf("%d %s", st.Hosts[k], k))
	}
	fmt.Fprintf(w, "hosts: %s; apps: %d; installations: %d; instances: %d\n\n", or(strings.Join(hosts, ", "), "none"), st.Apps, st.Installations, st.Instances)
	return memberTable(w, st.Nodes)
}

func memberTable(w io.Writer, nodes []apiclient.Node) error {
	var rows [][]string
	for _, n := range nodes {
		role := "follower"
		if n.Leader {
			role = "leader"
		}
		if !n.Voter {
			role += " (non-voter)"
		}
		rows = append(rows, []string{n.ID, role, n.RaftAddress, or(n.APIURL, "-"), or(n.TunnelAddr, "-"), buildOf(n.Build)})
	}
	return table(w, []string{"NODE", "ROLE", "RAFT", "API", "TUNNEL", "VERSION"}, rows)
}

// ---- cluster ----

func cmdClusterMembers(c *cmdCtx) error {
	ns, err := c.client.Members(c.ctx)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, ns)
	}
	return memberTable(c.env.Stdout, ns)
}

func cmdClusterPlacement(c *cmdCtx) error {
	var policy string
	var err error
	switch len(c.args) {
	case 0:
		policy, err = c.client.PlacementPolicy(c.ctx)
	case 1:
		if c.args[0] != "spread" && c.args[0] != "pack" {
			return cli.Usagef("cluster placement %q: the policies are spread and pack", c.args[0])
		}
		policy, err = c.client.SetPlacementPolicy(c.ctx, c.args[0])
	default:
		return cli.Usagef("usage: potluck cluster placement [spread|pack]")
	}
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, map[string]string{"policy": policy})
	}
	fmt.Fprintf(c.env.Stdout, "placement policy: %s\n", policy)
	return nil
}

func cmdClusterAdd(c *cmdCtx) error {
	st, err := c.client.AddMember(c.ctx, c.args[0], c.args[1])
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, st.Nodes)
	}
	fmt.Fprintf(c.env.Stdout, "core node %s added as a voter at %s\n", c.args[0], c.args[1])
	return memberTable(c.env.Stdout, st.Nodes)
}

func cmdClusterRemove(c *cmdCtx) error {
	if err := c.client.RemoveMember(c.ctx, c.args[0]); err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, map[string]string{"removed": c.args[0]})
	}
	fmt.Fprintf(c.env.Stdout, "core node %s removed from the raft group; it stops serving and exits\n", c.args[0])
	return nil
}

// buildOf is a node's version for the status table: release, short commit
// and Go version; "-" for a node that has not published it.
func buildOf(b *version.Info) string {
	if b == nil {
		return "-"
	}
	s := b.Version
	if c := b.Commit; c != "" && !strings.Contains(s, c[:min(7, len(c))]) {
		s += " (" + c[:min(12, len(c))] + ")"
	}
	return s + " " + b.GoVersion
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ---- hosts ----

func hostRows(hs []apiclient.Host) [][]string {
	var rows [][]string
	for _, h := range hs {
		rows = append(rows, []string{h.Name, h.ID, h.Role, h.Status, h.TunnelAddr,
			cpus(h.Free.MilliCPU) + "/" + cpus(h.Capacity.MilliCPU),
			mib(h.Free.MemoryMB) + "/" + mib(h.Capacity.MemoryMB),
			strconv.Itoa(h.Instances), age(h.RegisteredAt)})
	}
	return rows
}

var hostHeader = []string{"NAME", "ID", "ROLE", "STATUS", "TUNNEL", "CPU FREE/TOTAL", "MEMORY FREE/TOTAL", "INSTANCES", "AGE"}

func cmdHostsLs(c *cmdCtx, q *apiclient.Query) (apiclient.Meta, error) {
	hs, meta, err := c.client.Hosts(c.ctx, q)
	if err != nil {
		return meta, err
	}
	if c.g.json {
		return meta, printJSON(c.env.Stdout, hs)
	}
	return meta, table(c.env.Stdout, hostHeader, hostRows(hs))
}

func cmdHostsShow(c *cmdCtx) error {
	h, err := c.client.Host(c.ctx, c.args[0])
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, h)
	}
	return table(c.env.Stdout, []string{"FIELD", "VALUE"}, [][]string{
		{"name", h.Name}, {"id", h.ID}, {"role", h.Role}, {"status", h.Status},
		{"tunnel address", h.TunnelAddr}, {"endpoint", or(h.Endpoint, "-")},
		{"public url", or(h.PublicURL, "-")}, {"region", or(h.Region, "-")},
		{"public key", h.PublicKey},
		{"capacity (declared)", fmt.Sprintf("%s cpu, %s memory, %s disk", cpus(h.Capacity.MilliCPU), mib(h.Capacity.MemoryMB), mib(h.Capacity.DiskMB))},
		{"measured", measured(h.Measured)},
		{"features", features(h)},
		{"free", fmt.Sprintf("%s cpu, %s memory, %s disk", cpus(h.Free.MilliCPU), mib(h.Free.MemoryMB), mib(h.Free.DiskMB))},
		{"instances", strconv.Itoa(h.Instances)}, {"join token", or(h.TokenID, "-")},
		{"registered", h.RegisteredAt.Format(time.RFC3339)},
	})
}

// measured shows what a host's agent measured ("-" for older agents).
func measured(m *apiclient.Resources) string {
	if m == nil {
		return "- (agent too old to measure; placement uses the declaration)"
	}
	return fmt.Sprintf("%s cpu, %s memory, %s disk", cpus(m.MilliCPU), mib(m.MemoryMB), mib(m.DiskMB))
}

// features lists what installations can require of a host (--requires),
// "-" for what is unknown.
func features(h *apiclient.Host) string {
	parts := []string{"arch=" + or(h.Arch, "-"), "storage=" + or(h.Storage, "-"), "region=" + or(h.Region, "-"), "lender=" + or(h.Lender, "-")}
	for _, k := range slices.Sorted(maps.Keys(h.Labels)) {
		parts = append(parts, k+"="+h.Labels[k])
	}
	return strings.Join(parts, " ")
}

type hostsLabel struct {
	lender         cli.OptionalString
	label, unlabel cli.Repeated
}

func (h *hostsLabel) register(fs *cli.FlagSet) {
	fs.Var(&h.lender, "lender", "who lends the host (--lender '' clears it)")
	fs.Var(&h.label, "label", "set a label, KEY=VALUE (repeatable)")
	fs.Var(&h.unlabel, "unlabel", "remove the label KEY (repeatable)")
}

func (h *hostsLabel) run(c *cmdCtx) error {
	patch := apiclient.HostPatch{Lender: h.lender.Ptr(), Labels: map[string]*string{}}
	for _, kv := range h.label {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return cli.Usagef("--label %q: give KEY=VALUE, e.g. --label gpu=a100", kv)
		}
		patch.Labels[k] = &v
	}
	for _, k := range h.unlabel {
		if _, set := patch.Labels[k]; set {
			return cli.Usagef("--label and --unlabel both name %q", k)
		}
		patch.Labels[k] = nil
	}
	if patch.Lender == nil && len(patch.Labels) == 0 {
		return cli.Usagef("hosts label needs --lender, --label or --unlabel")
	}
	host, err := c.client.PatchHost(c.ctx, c.args[0], patch)
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, host)
	}
	fmt.Fprintf(c.env.Stdout, "host %s: %s\n", host.Name, features(host))
	return nil
}

func cmdHostsRm(c *cmdCtx) error {
	h, err := c.client.DecommissionHost(c.ctx, c.args[0])
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, h)
	}
	if h.Status == "draining" {
		// Decommissioning drains first: replacements start elsewhere while
		// the host keeps serving; it leaves once they run.
		fmt.Fprintf(c.env.Stdout, "host %s (%s) is draining: its instances get replacements on other hosts; it is decommissioned once they run (watch with potluck hosts show %s)\n", h.Name, h.ID, h.Name)
		return nil
	}
	fmt.Fprintf(c.env.Stdout, "host %s (%s) decommissioned\n", h.Name, h.ID)
	return nil
}

// ---- tokens ----

type tokensCreate struct {
	description         string
	ttl                 cli.Duration
	scope               string
	apps, installations cli.StringList
}

func (t *tokensCreate) register(fs *cli.FlagSet) {
	fs.StringVar(&t.description, "description", "", "what the token is for, e.g. \"alice laptop\"")
	fs.Var(&t.ttl, "ttl", "expire after this long, e.g. 24h or 7d (default: never)")
	fs.StringVar(&t.scope, "scope", "join", "join (registers a host), app-owner (reads and changes the apps and installations named) or read-only (reads everything)")
	fs.Var(&t.apps, "apps", "app-owner: comma-separated apps it owns, with their installations (e.g. shop,blog)")
	fs.Var(&t.installations, "installations", "app-owner: comma-separated further installations it owns")
}

func (tc *tokensCreate) run(c *cmdCtx) error {
	if tc.ttl < 0 {
		return cli.Usagef("--ttl must not be negative")
	}
	req := apiclient.TokenRequest{Description: tc.description, TTL: time.Duration(tc.ttl), Scope: tc.scope,
		Apps: tc.apps, Installations: tc.installations}
	switch tc.scope {
	case apiclient.ScopeJoin, apiclient.ScopeReadOnly:
		if len(req.Apps)+len(req.Installations) > 0 {
			return cli.Usagef("--apps and --installations go with --scope app-owner")
		}
	case apiclient.ScopeAppOwner:
		if len(req.Apps)+len(req.Installations) == 0 {
			return cli.Usagef("--scope app-owner needs --apps, --installations or both")
		}
	default:
		return cli.Usagef("--scope must be join, app-owner or read-only")
	}
	t, err := c.client.CreateScopedToken(c.ctx, req)
	if err != nil {
		return inFlagTerms(err, tokenFlags)
	}
	if c.g.json {
		return printJSON(c.env.Stdout, t)
	}
	exp := "never"
	if t.ExpiresAt != nil {
		exp = t.ExpiresAt.Format(time.RFC3339)
	}
	kind := "join token"
	switch t.Scope {
	case apiclient.ScopeAppOwner:
		kind = "app-owner token for " + tokenNames(t)
	case apiclient.ScopeReadOnly:
		kind = "read-only token"
	}
	fmt.Fprintf(c.env.Stdout, "%s %s created (expires: %s); it is shown only now:\n%s\n", kind, t.ID, exp, t.Token)
	return nil
}

// tokenNames is what an app-owner token owns, e.g. "apps shop,blog".
func tokenNames(t *apiclient.Token) string {
	var parts []string
	if len(t.Apps) > 0 {
		parts = append(parts, "apps "+strings.Join(t.Apps, ","))
	}
	if len(t.Installations) > 0 {
		parts = append(parts, "installations "+strings.Join(t.Installations, ","))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

type tokensRotate struct {
	grace cli.Duration
}

func (t *tokensRotate) register(fs *cli.FlagSet) {
	t.grace = cli.Duration(time.Hour)
	fs.Var(&t.grace, "grace", "how long the old operator token keeps working, e.g. 1h or 0s (default 1h)")
}

func (tr *tokensRotate) run(c *cmdCtx) error {
	if tr.grace < 0 {
		return cli.Usagef("--grace must not be negative")
	}
	rot, err := c.client.RotateOperatorToken(c.ctx, time.Duration(tr.grace))
	if err != nil {
		return inFlagTerms(err, map[string]string{"grace": "--grace"})
	}
	if c.g.json {
		return printJSON(c.env.Stdout, rot)
	}
	until := "now"
	if rot.PreviousUntil != nil {
		until = rot.PreviousUntil.Format(time.RFC3339)
	}
	fmt.Fprintf(c.env.Stdout, "operator token rotated; the old one works until %s. The new one is shown only now:\n%s\n", until, rot.Token)
	return nil
}

func cmdTokensLs(c *cmdCtx, q *apiclient.Query) (apiclient.Meta, error) {
	ts, meta, err := c.client.Tokens(c.ctx, q)
	if err != nil {
		return meta, err
	}
	if c.g.json {
		return meta, printJSON(c.env.Stdout, ts)
	}
	var rows [][]string
	for _, t := range ts {
		exp := "never"
		if t.ExpiresAt != nil {
			exp = t.ExpiresAt.Format(time.RFC3339)
		}
		rows = append(rows, []string{t.ID, or(t.Scope, apiclient.ScopeJoin), tokenNames(&t), or(t.Description, "-"), t.CreatedAt.Format(time.RFC3339), exp, strconv.FormatBool(t.Revoked)})
	}
	return meta, table(c.env.Stdout, []string{"ID", "SCOPE", "OWNS", "DESCRIPTION", "CREATED", "EXPIRES", "REVOKED"}, rows)
}

func cmdTokensRevoke(c *cmdCtx) error {
	t, err := c.client.RevokeToken(c.ctx, c.args[0])
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, t)
	}
	fmt.Fprintf(c.env.Stdout, "%s token %s revoked\n", or(t.Scope, apiclient.ScopeJoin), t.ID)
	return nil
}

// ---- apps ----

type appsPush struct {
	name string
	port int
}

func (a *appsPush) register(fs *cli.FlagSet) {
	fs.StringVar(&a.name, "name", "", "app name (1-63 of a-z 0-9 -; required)")
	fs.IntVar(&a.port, "port", 0, "port the container listens on, e.g. 8080 (default: the image's EXPOSE, when it declares one TCP port)")
}

func (a *appsPush) run(c *cmdCtx) error {
	name, port := a.name, a.port
	if name == "" {
		return cli.Usagef("apps push needs --name")
	}
	if port < 0 || port > 65535 {
		return cli.Usagef("--port must be 1-65535")
	}
	if port == 0 {
		// Not a readable image: the core's validation says what is wrong.
		ports, _ := exposedPorts(c.args[0])
		switch len(ports) {
		case 0: // deploy will need --port
		case 1:
			port = ports[0]
			fmt.Fprintf(c.env.Stderr, "using container port %d from the image's EXPOSE\n", port)
		default:
			fmt.Fprintf(c.env.Stderr, "the image exposes %s; pass --port here or at deploy to say which serves HTTP\n", joinInts(ports))
		}
	}
	var bar *progressBar
	var progress apiclient.Progress
	if c.env.stderrIsTTY && !c.g.json {
		bar = &progressBar{w: c.env.Stderr, label: name}
		progress = bar.update
	}
	start := time.Now()
	app, err := c.client.UploadAppFile(c.ctx, name, port, c.args[0], progress)
	if bar != nil {
		bar.done()
	}
	if err != nil {
		return inFlagTerms(err, pushFlags)
	}
	if c.g.json {
		return printJSON(c.env.Stdout, app)
	}
	version := ""
	if app.Version > 1 {
		version = fmt.Sprintf(" version %d", app.Version)
	}
	fmt.Fprintf(c.env.Stdout, "pushed %s%s: image %s, %s, %s, in %s\n", app.Name, version, app.Image, human.Bytes(app.Size), app.Digest, time.Since(start).Round(time.Millisecond))
	if app.Version > 1 && len(app.UsedBy) > 0 {
		fmt.Fprintf(c.env.Stdout, "roll it out with: potluck deploy --name %s\n", app.UsedBy[0])
	}
	return nil
}

func appRows(as []apiclient.App) [][]string {
	var rows [][]string
	for _, a := range as {
		port := "-"
		if a.ContainerPort != 0 {
			port = strconv.Itoa(a.ContainerPort)
		}
		rows = append(rows, []string{a.Name, "v" + strconv.Itoa(max(a.Version, 1)), a.Image, or(short(a.Digest, 19), "-"), human.Bytes(a.Size), port, or(strings.Join(a.UsedBy, ","), "-"), age(a.CreatedAt)})
	}
	return rows
}

func cmdAppsLs(c *cmdCtx, q *apiclient.Query) (apiclient.Meta, error) {
	as, meta, err := c.client.Apps(c.ctx, q)
	if err != nil {
		return meta, err
	}
	if c.g.json {
		return meta, printJSON(c.env.Stdout, as)
	}
	return meta, table(c.env.Stdout, []string{"NAME", "VERSION", "IMAGE", "DIGEST", "SIZE", "PORT", "USED BY", "AGE"}, appRows(as))
}

func cmdAppsShow(c *cmdCtx) error {
	a, err := c.client.App(c.ctx, c.args[0])
	if err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, a)
	}
	if err := table(c.env.Stdout, []string{"NAME", "VERSION", "IMAGE", "DIGEST", "SIZE", "PORT", "USED BY", "AGE"}, appRows([]apiclient.App{*a})); err != nil {
		return err
	}
	if len(a.Versions) < 2 {
		return nil
	}
	fmt.Fprintln(c.env.Stdout, "\nversions kept:")
	var rows [][]string
	for i := len(a.Versions) - 1; i >= 0; i-- {
		v := a.Versions[i]
		rows = append(rows, []string{"v" + strconv.Itoa(v.Version), v.Image, or(short(v.Digest, 19), "-"), human.Bytes(v.Size), age(v.CreatedAt)})
	}
	return table(c.env.Stdout, []string{"VERSION", "IMAGE", "DIGEST", "SIZE", "PUSHED"}, rows)
}

func cmdAppsRm(c *cmdCtx) error {
	if err := c.client.DeleteApp(c.ctx, c.args[0]); err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, map[string]string{"deleted": c.args[0]})
	}
	fmt.Fprintf(c.env.Stdout, "app %s deleted\n", c.args[0])
	return nil
}

// ---- deploy and installations ----

// The smallest instance the core accepts: Docker refuses less than 6 MiB of
// memory, and a hundredth of a CPU is the scheduler's granularity.
const (
	minMemoryMiB = 6
	minCPUs      = 0.01
)

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// sizeFlag parses the value s of the size flag --name; "" is 0 (the
// server's default).
func sizeFlag(name, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mb, err := parseSizeMiB(s)
	if err != nil {
		return 0, cli.Usagef("--%s: %v", name, err)
	}
	return mb, nil
}

func instanceTable(w io.Writer, is []apiclient.Instance) error {
	var rows [][]string
	for _, i := range is {
		rows = append(rows, []string{i.ID, i.Installation, i.App, or(i.HostName, i.HostID), i.TunnelAddr + ":" + strconv.Itoa(i.Port), i.State, or(i.Message, "-"), age(i.UpdatedAt)})
	}
	return table(w, []string{"ID", "INSTALLATION", "APP", "HOST", "ADDRESS", "STATE", "MESSAGE", "UPDATED"}, rows)
}

func running(is []apiclient.Instance) int {
	n := 0
	for _, i := range is {
		if i.State == "running" {
			n++
		}
	}
	return n
}

func cmdInstLs(c *cmdCtx, q *apiclient.Query) (apiclient.Meta, error) {
	is, meta, err := c.client.Installations(c.ctx, q)
	if err != nil {
		return meta, err
	}
	if c.g.json {
		return meta, printJSON(c.env.Stdout, is)
	}
	var rows [][]string
	for _, in := range is {
		rows = append(rows, []string{in.Name, in.App, in.Domain, strconv.Itoa(in.Fronts), strconv.Itoa(in.Backs),
			fmt.Sprintf("%d/%d", running(in.Instances), len(in.Instances)),
			cpus(in.PerInstance.MilliCPU) + " cpu, " + mib(in.PerInstance.MemoryMB), age(in.CreatedAt)})
	}
	return meta, table(c.env.Stdout, []string{"NAME", "APP", "DOMAIN", "FRONTS", "BACKS", "RUNNING", "PER INSTANCE", "AGE"}, rows)
}

type instShow struct{ watch bool }

func (s *instShow) register(fs *cli.FlagSet) {
	fs.BoolVar(&s.watch, "watch", false, "print it again whenever it changes (until Ctrl-C or --timeout)")
}

func (s *instShow) run(c *cmdCtx) error {
	in, meta, err := c.client.Installation(c.ctx, c.args[0], nil)
	if err != nil {
		return err
	}
	if err := printInstallation(c, in); err != nil || !s.watch {
		return err
	}
	// --watch: print it again whenever it changes (a blocking query on the
	// API), until interrupted or --timeout passes.
	for {
		in, meta, err = c.client.Installation(c.ctx, c.args[0], &apiclient.Query{Index: meta.Index, Wait: 5 * time.Minute})
		if c.ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		if !c.g.json {
			fmt.Fprintf(c.env.Stdout, "\n--- %s (state index %d)\n", time.Now().Format(time.TimeOnly), meta.Index)
		}
		if err := printInstallation(c, in); err != nil {
			return err
		}
	}
}

func printInstallation(c *cmdCtx, in *apiclient.Installation) error {
	if c.g.json {
		return printJSON(c.env.Stdout, in)
	}
	w := c.env.Stdout
	var fronts []string
	for _, f := range in.FrontDetails {
		if f.PublicURL == "" {
			fronts = append(fronts, fmt.Sprintf("%s (%s, no public URL registered)", f.Name, f.Status))
		} else {
			fronts = append(fronts, fmt.Sprintf("%s %s (%s)", f.Name, f.PublicURL, f.Status))
		}
	}
	var env []string
	for k, v := range in.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	fmt.Fprintf(w, "installation %s: app %s, %s\n", in.Name, in.App, in.URL)
	fmt.Fprintf(w, "fronts %d: %s\n", in.Fronts, or(strings.Join(fronts, ", "), "-"))
	if len(in.FrontDetails) > 0 {
		fmt.Fprintf(w, "DNS: point %s at the Fronts' addresses above\n", in.Domain)
	}
	if line := httpsSummary(in); line != "" {
		fmt.Fprintln(w, line)
	}
	if in.Release > 0 {
		fmt.Fprintf(w, "release %d (%s v%d)", in.Release, in.App, max(in.AppVersion, 1))
		if d := deployingRelease(in); d != nil {
			fmt.Fprintf(w, "; release %d rolling out", d.Version)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "backs %d, %d running; per instance %s cpu, %s memory, %s disk; container port %d\n",
		in.Backs, running(in.Instances), cpus(in.PerInstance.MilliCPU), mib(in.PerInstance.MemoryMB), mib(in.PerInstance.DiskMB), in.ContainerPort)
	fmt.Fprintf(w, "env: %s\n\n", or(strings.Join(env, " "), "-"))
	return instanceTable(w, in.Instances)
}

// instScale changes only the counts given (flag or environment twin).
type instScale struct{ fronts, backs cli.OptionalInt }

func (s *instScale) register(fs *cli.FlagSet) {
	fs.Var(&s.fronts, "fronts", "new number of Fronts")
	fs.Var(&s.backs, "backs", "new number of Backs")
}

func (s *instScale) run(c *cmdCtx) error {
	fronts, backs := s.fronts.Ptr(), s.backs.Ptr()
	if fronts == nil && backs == nil {
		return cli.Usagef("installations scale needs --fronts and/or --backs")
	}
	in, err := c.client.ScaleInstallation(c.ctx, c.args[0], fronts, backs)
	if err != nil {
		return inFlagTerms(err, scaleFlags)
	}
	return printInstallation(c, in)
}

func cmdInstRm(c *cmdCtx) error {
	if err := c.client.DeleteInstallation(c.ctx, c.args[0]); err != nil {
		return err
	}
	if c.g.json {
		return printJSON(c.env.Stdout, map[string]string{"deleted": c.args[0]})
	}
	fmt.Fprintf(c.env.Stdout, "installation %s deleted\n", c.args[0])
	return nil
}

func cmdContainersLs(c *cmdCtx, q *apiclient.Query) (apiclient.Meta, error) {
	is, meta, err := c.client.Containers(c.ctx, q)
	if err != nil {
		return meta, err
	}
	if c.g.json {
		return meta, printJSON(c.env.Stdout, is)
	}
	return meta, instanceTable(c.env.Stdout, is)
}

// ---- lists ----

// listCmd is an `ls` command: every item (the client follows the API's
// pages), or with --limit at most that many and, when more remain, the
// --cursor that continues the list.
type listCmd struct {
	limit  int
	cursor string
	list   func(c *cmdCtx, q *apiclient.Query) (apiclient.Meta, error)
}

func (l *listCmd) register(fs *cli.FlagSet) {
	fs.IntVar(&l.limit, "limit", 0, "list at most this many (0 = all); says how to continue when more remain")
	fs.StringVar(&l.cursor, "cursor", "", "continue a list cut by --limit where it ended")
}

func (l *listCmd) run(c *cmdCtx) error {
	if l.limit < 0 {
		return cli.Usagef("--limit %d: give a number of items, or 0 for all", l.limit)
	}
	meta, err := l.list(c, &apiclient.Query{Limit: l.limit, Cursor: l.cursor})
	if err != nil {
		return err
	}
	if meta.Next != "" {
		fmt.Fprintf(c.env.Stderr, "more remain: add --cursor %s\n", meta.Next)
	}
	return nil
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
