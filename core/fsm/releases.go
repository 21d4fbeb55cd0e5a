package fsm

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"potluck/agentproto"
)

// ReleaseStatus is where a release is in its life.
type ReleaseStatus string

// Release states. Deploying: its instances start beside the live release's;
// Live: it serves the installation; Superseded: a later release replaced it;
// Failed: its instances did not become healthy and were removed, the release
// before it kept serving.
const (
	ReleaseDeploying  ReleaseStatus = "deploying"
	ReleaseLive       ReleaseStatus = "live"
	ReleaseSuperseded ReleaseStatus = "superseded"
	ReleaseFailed     ReleaseStatus = "failed"
)

// MaxReleases is how many releases an installation remembers; older
// superseded or failed ones are forgotten first.
const MaxReleases = 20

// MaxAppVersions is how many versions an app keeps; the oldest version no
// release remembers is forgotten first.
const MaxAppVersions = 20

// Release is what an installation runs: a version of an app with its env,
// resources, container port and health check. Deploying a change creates a
// new release; rollback creates one from an older release's settings.
type Release struct {
	Version       int               `json:"version"`
	App           string            `json:"app"`
	AppVersion    int               `json:"app_version,omitempty"` // 0: the app's only version (state from before versions)
	PerInstance   Resources         `json:"per_instance"`
	Env           map[string]string `json:"env,omitempty"`
	ContainerPort int               `json:"container_port"`
	Health        *HealthCheck      `json:"health,omitempty"`
	Status        ReleaseStatus     `json:"status"`
	Message       string            `json:"message,omitempty"`     // why it failed
	Description   string            `json:"description,omitempty"` // e.g. "rollback to v2"
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// HealthCheck is how a Back decides an instance is healthy. The core
// stores what it sends, so it is the wire type itself (agentproto says what
// the fields and their defaults mean).
type HealthCheck = agentproto.HealthCheck

// AppVersion is one pushed version of an app.
type AppVersion struct {
	Version       int       `json:"version"`
	Image         string    `json:"image,omitempty"`
	Digest        string    `json:"digest,omitempty"`
	Size          int64     `json:"size,omitempty"`
	ContainerPort int       `json:"container_port,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	// UncompressedSize is what the image unpacks to (0: not counted).
	UncompressedSize int64 `json:"uncompressed_size,omitempty"`
}

// CurrentVersion is the app's newest version number (1 for apps from
// before versions).
func (a *App) CurrentVersion() int { return max(a.Version, 1) }

// At returns version v of the app (0: the newest).
func (a *App) At(v int) (AppVersion, bool) {
	if v == 0 || v == a.CurrentVersion() {
		return AppVersion{Version: a.CurrentVersion(), Image: a.Image, Digest: a.Digest, Size: a.Size, ContainerPort: a.ContainerPort,
			CreatedAt: a.CreatedAt, UncompressedSize: a.UncompressedSize}, true
	}
	for _, av := range a.Versions {
		if av.Version == v {
			return av, true
		}
	}
	return AppVersion{}, false
}

// Digests are the image blobs of every version the app keeps.
func (a *App) Digests() []string {
	var out []string
	if a.Digest != "" {
		out = append(out, a.Digest)
	}
	for _, av := range a.Versions {
		if av.Digest != "" && av.Digest != a.Digest {
			out = append(out, av.Digest)
		}
	}
	return out
}

// LiveRelease is the installation's serving release number (1 for
// installations from before releases).
func (in *Installation) LiveRelease() int { return max(in.Release, 1) }

// ReleaseByVersion finds release v; v 0 is the live one. An installation
// from before releases has only its live settings, returned as release 1.
func (in *Installation) ReleaseByVersion(v int) (*Release, bool) {
	if v == 0 {
		v = in.LiveRelease()
	}
	if r := in.remembered(v); r != nil {
		return r, true
	}
	if v == in.LiveRelease() {
		return &Release{Version: v, App: in.App, AppVersion: in.AppVersion, PerInstance: in.PerInstance, Env: in.Env,
			ContainerPort: in.ContainerPort, Health: in.Health, Status: ReleaseLive, CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}, true
	}
	return nil, false
}

// remembered is release v among Releases, or nil.
func (in *Installation) remembered(v int) *Release {
	for _, r := range in.Releases {
		if r.Version == v {
			return r
		}
	}
	return nil
}

// Deploying is the release being rolled out, if any.
func (in *Installation) Deploying() *Release {
	for _, r := range in.Releases {
		if r.Status == ReleaseDeploying {
			return r
		}
	}
	return nil
}

// LatestRelease is the highest release number ever created.
func (in *Installation) LatestRelease() int {
	n := in.LiveRelease()
	for _, r := range in.Releases {
		n = max(n, r.Version)
	}
	return n
}

// InstanceRelease is the release an instance runs (its installation's live
// one when it predates releases).
func (s *State) InstanceRelease(in *Instance) *Release {
	inst := s.Installations[in.Installation]
	if inst == nil {
		return nil
	}
	if r := inst.releaseRun(in); r != nil {
		return r
	}
	r, _ := inst.ReleaseByVersion(0) // its live settings as a Release
	return r
}

// releaseRun is the remembered release instance in runs: its own, else the
// live one; nil when the live release is not remembered (an installation
// from before releases), the installation's fields then being its settings.
func (inst *Installation) releaseRun(in *Instance) *Release {
	live := inst.LiveRelease()
	if r := inst.remembered(cmp.Or(in.Release, live)); r != nil {
		return r
	}
	return inst.remembered(live)
}

// pushAppVersion adds a version to an existing app and makes it the newest.
func (s *State) pushAppVersion(c *Command) (string, error) {
	a := c.App
	if a == nil || a.Name == "" {
		return "", errf(CodeInvalid, "app without name")
	}
	cur, ok := s.Apps[a.Name]
	if !ok {
		return "", errf(CodeNotFound, "no app %q", a.Name)
	}
	if cur.Image == "" && cur.Digest == "" {
		return "", errf(CodeInvalid, "app %q has no image", a.Name)
	}
	next := *cur
	next.Versions = append([]AppVersion(nil), cur.Versions...)
	if len(next.Versions) == 0 {
		v, _ := cur.At(0)
		next.Versions = []AppVersion{v}
	}
	next.Version = cur.CurrentVersion() + 1
	next.Image, next.Digest, next.Size, next.ContainerPort = a.Image, a.Digest, a.Size, a.ContainerPort
	next.UncompressedSize = a.UncompressedSize
	next.CreatedAt = c.Time
	nv, _ := next.At(0)
	next.Versions = append(next.Versions, nv)
	// Forget the oldest versions no release remembers.
	if len(next.Versions) > MaxAppVersions {
		remembered := s.appVersionsRemembered(a.Name)
		for len(next.Versions) > MaxAppVersions {
			i := slices.IndexFunc(next.Versions, func(v AppVersion) bool {
				return v.Version != next.Version && !remembered[v.Version]
			})
			if i < 0 {
				return "", errf(CodeConflict, "app %q keeps %d versions, all used by releases; delete old installations first", a.Name, MaxAppVersions)
			}
			next.Versions = slices.Delete(next.Versions, i, i+1)
		}
	}
	s.Apps[a.Name] = &next
	return AppVersionRef(a.Name, next.Version), nil
}

// AppVersionRef is the ref of a write that made version v of app: the
// request record keeps which version a create (1) or push (2 and up) made,
// so a retried write is answered with its own outcome, not with the
// app's state at the time of the retry.
func AppVersionRef(app string, v int) string { return app + "@" + strconv.Itoa(v) }

// ParseAppVersionRef splits a ref of AppVersionRef; a bare app name (a
// create, or a record from before versions) is version 1.
func ParseAppVersionRef(ref string) (app string, v int) {
	name, ver, ok := strings.Cut(ref, "@")
	if n, err := strconv.Atoi(ver); ok && err == nil && n > 0 {
		return name, n
	}
	return ref, 1
}

// appVersionsRemembered is the set of versions of app that a release of
// any installation names: one walk over the installations, in no order (a
// set needs none).
func (s *State) appVersionsRemembered(app string) map[int]bool {
	out := map[int]bool{}
	for _, inst := range s.Installations {
		for _, r := range inst.Releases {
			if r.App == app {
				out[max(r.AppVersion, 1)] = true
			}
		}
		if len(inst.Releases) == 0 && inst.App == app {
			out[max(inst.AppVersion, 1)] = true
		}
	}
	return out
}

// deployRelease adds a release in state deploying, with its instances.
func (s *State) deployRelease(c *Command) (string, error) {
	inst := s.editInstallation(c.Name)
	if inst == nil {
		return "", errf(CodeNotFound, "no installation %q", c.Name)
	}
	if err := refuseIfDeleting(inst); err != nil {
		return "", err
	}
	r := c.Release
	if r == nil {
		return "", errf(CodeInvalid, "deploy without a release")
	}
	if d := inst.Deploying(); d != nil {
		return "", errf(CodeConflict, "release %d of %q is still rolling out; wait for it or roll back after", d.Version, c.Name)
	}
	if r.Version != inst.LatestRelease()+1 {
		return "", errf(CodeConflict, "release %d of %q: the next release is %d", r.Version, c.Name, inst.LatestRelease()+1)
	}
	app, ok := s.Apps[r.App]
	if !ok {
		return "", errf(CodeNotFound, "no app %q", r.App)
	}
	if _, ok := app.At(r.AppVersion); !ok {
		return "", errf(CodeNotFound, "app %q has no version %d", r.App, r.AppVersion)
	}
	if len(c.Instances) != inst.Backs {
		return "", errf(CodeInvalid, "release %d needs %d instances, got %d", r.Version, inst.Backs, len(c.Instances))
	}
	if len(inst.Releases) == 0 {
		// From before releases: remember the live settings as release 1.
		live, _ := inst.ReleaseByVersion(0)
		inst.Releases = []*Release{live}
	} else {
		inst.Releases = append([]*Release(nil), inst.Releases...)
	}
	cp := *r
	cp.Status, cp.Message, cp.CreatedAt, cp.UpdatedAt = ReleaseDeploying, "", c.Time, c.Time
	inst.Releases = append(inst.Releases, &cp)
	for len(inst.Releases) > MaxReleases {
		i := 0
		for i < len(inst.Releases) && (inst.Releases[i].Status == ReleaseLive || inst.Releases[i].Status == ReleaseDeploying) {
			i++
		}
		inst.Releases = append(inst.Releases[:i], inst.Releases[i+1:]...)
	}
	inst.UpdatedAt = c.Time
	for _, in := range c.Instances {
		if in != nil && in.Release != r.Version {
			return "", errf(CodeInvalid, "instance %s belongs to release %d, not %d", in.ID, in.Release, r.Version)
		}
	}
	if err := s.addInstances(c.Instances, c.Name, c.Time); err != nil {
		return "", err
	}
	return c.Name, s.checkInvariants()
}

// promoteRelease makes a deploying release live: the installation takes its
// settings and every instance of another release starts draining (Fronts stop
// routing to it; the leader removes it after the drain time).
func (s *State) promoteRelease(c *Command) (string, error) {
	inst, r, err := s.deployingRelease(c)
	if err != nil {
		return "", err
	}
	for i, o := range inst.Releases {
		switch {
		case o.Version == r.Version:
			cp := *o
			cp.Status, cp.UpdatedAt = ReleaseLive, c.Time
			inst.Releases[i] = &cp
		case o.Status == ReleaseLive:
			cp := *o
			cp.Status, cp.UpdatedAt = ReleaseSuperseded, c.Time
			inst.Releases[i] = &cp
		}
	}
	inst.Release, inst.App, inst.AppVersion = r.Version, r.App, r.AppVersion
	inst.PerInstance, inst.Env, inst.ContainerPort, inst.Health = r.PerInstance, r.Env, r.ContainerPort, r.Health
	inst.UpdatedAt = c.Time
	for _, in := range s.InstancesOf(c.Name) {
		if in.Release != r.Version {
			in := s.editInstance(in.ID)
			in.State, in.Message, in.UpdatedAt = InstanceDraining, "replaced by release "+strconv.Itoa(r.Version), c.Time
		}
	}
	return c.Name, s.checkInvariants()
}

// failRelease stops a deploying release: its instances are removed and the
// live release keeps serving.
func (s *State) failRelease(c *Command) (string, error) {
	inst, r, err := s.deployingRelease(c)
	if err != nil {
		return "", err
	}
	for i, o := range inst.Releases {
		if o.Version == r.Version {
			cp := *o
			cp.Status, cp.Message, cp.UpdatedAt = ReleaseFailed, c.Release.Message, c.Time
			inst.Releases[i] = &cp
		}
	}
	inst.UpdatedAt = c.Time
	for _, in := range s.InstancesOf(c.Name) {
		if in.Release == r.Version {
			s.dropInstance(in.ID)
		}
	}
	return c.Name, nil
}

func (s *State) deployingRelease(c *Command) (*Installation, *Release, error) {
	inst := s.editInstallation(c.Name)
	if inst == nil {
		return nil, nil, errf(CodeNotFound, "no installation %q", c.Name)
	}
	if c.Release == nil {
		return nil, nil, errf(CodeInvalid, "no release named")
	}
	d := inst.Deploying()
	if d == nil || d.Version != c.Release.Version {
		return nil, nil, errf(CodeConflict, "release %d of %q is not rolling out", c.Release.Version, c.Name)
	}
	inst.Releases = append([]*Release(nil), inst.Releases...)
	return inst, d, nil
}
