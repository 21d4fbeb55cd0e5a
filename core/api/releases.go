package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"potluck/core/fsm"
	"potluck/core/scheduler"
	"potluck/internal/jsonhttp"
)

// Bounds of a release's health check.
const (
	MaxHealthPath     = 256
	MinHealthInterval = time.Second
	MaxHealthInterval = 5 * time.Minute
	MinHealthTimeout  = 100 * time.Millisecond
	MaxHealthTimeout  = time.Minute
	MaxHealthCount    = 10 // healthy and unhealthy thresholds: 1..MaxHealthCount
	MaxHealthGrace    = 10 * time.Minute
	MaxDescription    = 200 // bytes of a release's description
)

// healthRequest is a health check as clients send it: durations as Go
// duration strings ("10s"), zero fields for the defaults.
type healthRequest struct {
	Path      string `json:"path"`
	Interval  string `json:"interval"`
	Timeout   string `json:"timeout"`
	Healthy   int    `json:"healthy_threshold"`
	Unhealthy int    `json:"unhealthy_threshold"`
	Grace     string `json:"grace"`
}

// check validates the request and returns the check it describes.
func (h *healthRequest) check() (*fsm.HealthCheck, error) {
	if h == nil {
		return nil, nil
	}
	var p problems
	out := &fsm.HealthCheck{Path: h.Path, Healthy: h.Healthy, Unhealthy: h.Unhealthy}
	if h.Path != "" && (!strings.HasPrefix(h.Path, "/") || len(h.Path) > MaxHealthPath || strings.ContainsAny(h.Path, " \t\r\n\x00")) {
		p.add("health path must start with / and be at most %d bytes without spaces", MaxHealthPath)
	}
	dur := func(name, s string, lo, hi time.Duration, into *time.Duration) {
		if s == "" {
			return
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < lo || d > hi {
			p.add("health %s must be a duration from %s to %s", name, lo, hi)
			return
		}
		*into = d
	}
	dur("interval", h.Interval, MinHealthInterval, MaxHealthInterval, &out.Interval)
	dur("timeout", h.Timeout, MinHealthTimeout, MaxHealthTimeout, &out.Timeout)
	dur("grace", h.Grace, 0, MaxHealthGrace, &out.Grace)
	if h.Healthy < 0 || h.Healthy > MaxHealthCount || h.Unhealthy < 0 || h.Unhealthy > MaxHealthCount {
		p.add("health thresholds must be 1-%d", MaxHealthCount)
	}
	return out, p.err()
}

// deployRequest creates a new release of an existing installation. Absent
// fields keep the live release's settings; env, when given, replaces the
// whole environment ({} clears it).
type deployRequest struct {
	App           string            `json:"app"`         // "": the live release's app
	AppVersion    int               `json:"app_version"` // 0: the app's newest version
	CPUs          float64           `json:"cpus"`
	MemoryMB      int64             `json:"memory_mb"`
	DiskMB        int64             `json:"disk_mb"`
	Env           map[string]string `json:"env"`
	ContainerPort int               `json:"container_port"`
	Health        *healthRequest    `json:"health"`
	Description   string            `json:"description"`
}

func (req *deployRequest) check() error {
	var p problems
	if req.App != "" {
		p.addErr(checkName("app", req.App))
	}
	if req.AppVersion < 0 {
		p.add("app_version must not be negative")
	}
	if req.CPUs != 0 && (req.CPUs < MinCPUs || req.CPUs > MaxCPUs || math.IsNaN(req.CPUs)) {
		p.add("cpus must be between %g and %d", MinCPUs, MaxCPUs)
	}
	if req.MemoryMB != 0 && (req.MemoryMB < MinMemoryMB || req.MemoryMB > MaxMemoryMB) {
		p.add("memory_mb must be at least %d", MinMemoryMB)
	}
	if req.DiskMB < 0 {
		p.add("disk_mb must not be negative")
	}
	if req.ContainerPort < 0 || req.ContainerPort > MaxPort {
		p.add("container_port must be 1-%d", MaxPort)
	}
	p.addErr(checkEnv(req.Env))
	if _, err := req.Health.check(); err != nil {
		p.addErr(err)
	}
	if len(req.Description) > MaxDescription || strings.ContainsFunc(req.Description, isControl) {
		p.add("description must be at most %d bytes without control characters", MaxDescription)
	}
	return p.err()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

type rollbackRequest struct {
	Version int `json:"version"` // 0: the release live before the current one
}

// ReleaseView is a release with how many of its instances run.
type ReleaseView struct {
	*fsm.Release
	Live      bool `json:"live"`
	Instances int  `json:"instances"`
	Running   int  `json:"running"`
}

func releaseViews(st *fsm.State, inst *fsm.Installation) []ReleaseView {
	var out []ReleaseView
	for v := inst.LatestRelease(); v >= 1; v-- {
		r, ok := inst.ReleaseByVersion(v)
		if !ok {
			continue
		}
		rv := ReleaseView{Release: r, Live: v == inst.LiveRelease()}
		for _, in := range st.InstancesOf(inst.Name) {
			if max(in.Release, 1) == v || (in.Release == 0 && rv.Live) {
				rv.Instances++
				if in.State == fsm.InstanceRunning {
					rv.Running++
				}
			}
		}
		out = append(out, rv)
	}
	if out == nil {
		out = []ReleaseView{}
	}
	return out
}

func (s *Server) listReleases(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	inst := s.installation(w, st, r.PathValue("name"))
	if inst == nil {
		return
	}
	writeJSON(w, http.StatusOK, releaseViews(st, inst))
}

// deploy creates a release from the live one with the request's changes
// and starts its instances beside the live ones; the leader's reconciler
// promotes it once they all run, or fails it.
func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req deployRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.newRelease(w, r, name, func(st *fsm.State, inst *fsm.Installation, live *fsm.Release) (*fsm.Release, error) {
		return releaseFrom(st, live, &req)
	})
}

// rollback creates a release with the settings of an earlier one.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req rollbackRequest
	if !s.decodeOptional(w, r, &req) {
		return
	}
	if req.Version < 0 {
		writeError(w, http.StatusBadRequest, "version must be a release number")
		return
	}
	s.newRelease(w, r, name, func(st *fsm.State, inst *fsm.Installation, live *fsm.Release) (*fsm.Release, error) {
		v := req.Version
		if v == 0 {
			// The newest release before the live one that once served.
			for c := live.Version - 1; c >= 1 && v == 0; c-- {
				if old, ok := inst.ReleaseByVersion(c); ok && old.Status == fsm.ReleaseSuperseded {
					v = c
				}
			}
			if v == 0 {
				return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("installation %q has no earlier release that served", name)}
			}
		}
		old, ok := inst.ReleaseByVersion(v)
		if !ok {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("installation %q remembers no release %d", name, v)}
		}
		if v == live.Version {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("release %d is the live one", v)}
		}
		app := st.Apps[old.App]
		if app == nil {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("release %d ran app %q, which was deleted", v, old.App)}
		}
		if _, ok := app.At(old.AppVersion); !ok {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("release %d ran version %d of app %q, which is no longer kept", v, old.AppVersion, old.App)}
		}
		cp := *old
		cp.Description = fmt.Sprintf("rollback to release %d", v)
		return &cp, nil
	})
}

// releaseFrom applies a deploy request to the live release's settings.
func releaseFrom(st *fsm.State, live *fsm.Release, req *deployRequest) (*fsm.Release, error) {
	rel := *live
	rel.Message, rel.Description = "", req.Description
	if req.App != "" {
		rel.App = req.App
	}
	app := st.Apps[rel.App]
	if app == nil {
		return nil, &fsm.Error{Code: fsm.CodeInvalid, Message: fmt.Sprintf("unknown app %q; push it first", rel.App)}
	}
	v, ok := app.At(req.AppVersion)
	if !ok {
		return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("app %q has no version %d", rel.App, req.AppVersion)}
	}
	rel.AppVersion = v.Version
	switch {
	case req.ContainerPort != 0:
		rel.ContainerPort = req.ContainerPort
	case v.ContainerPort != 0:
		rel.ContainerPort = v.ContainerPort
	}
	if req.CPUs != 0 {
		rel.PerInstance.MilliCPU = int64(math.Round(req.CPUs * 1000))
	}
	if req.MemoryMB != 0 {
		rel.PerInstance.MemoryMB = req.MemoryMB
	}
	switch {
	case req.DiskMB != 0:
		rel.PerInstance.DiskMB = req.DiskMB
	case v.Size > 0:
		rel.PerInstance.DiskMB = max(rel.PerInstance.DiskMB, (v.Size+(1<<20)-1)>>20)
	}
	if req.Env != nil {
		rel.Env = req.Env
		if len(rel.Env) == 0 {
			rel.Env = nil
		}
	}
	if req.Health != nil {
		rel.Health, _ = req.Health.check()
	}
	return &rel, nil
}

type releaseBuilder func(st *fsm.State, inst *fsm.Installation, live *fsm.Release) (*fsm.Release, error)

// newRelease decides and commits a release built by build, with its
// instances placed beside the live ones, and answers 202 with the
// installation.
func (s *Server) newRelease(w http.ResponseWriter, r *http.Request, name string, build releaseBuilder) {
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		inst := st.Installations[name]
		if inst == nil {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no installation %q", name)}
		}
		if d := inst.Deploying(); d != nil {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("release %d of %q is still rolling out; wait for it to finish", d.Version, name)}
		}
		live, _ := inst.ReleaseByVersion(0)
		rel, err := build(st, inst, live)
		if err != nil {
			return nil, err
		}
		rel.Version = inst.LatestRelease() + 1
		p := scheduler.NewPlanner(st, scheduler.NewInstanceID, scheduler.Measured(st, s.cfg.Usage)...)
		p.Beside(name)
		instances, err := p.PlaceBacksNeeding(inst, st.ReleaseNeed(rel), inst.Backs)
		if err != nil {
			var fe *fsm.Error
			if errors.As(err, &fe) {
				fe.Message = "the new release starts beside the live one until it is healthy, so it needs room for its own instances: " + fe.Message
			}
			return nil, err
		}
		for _, in := range instances {
			in.Release = rel.Version
		}
		return &fsm.Command{Type: fsm.CmdDeployRelease, Name: name, Release: rel, Instances: instances}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.writeInstallation(w, http.StatusAccepted, name)
}

// rolloutBusy says why an installation cannot be scaled now, or "".
func rolloutBusy(st *fsm.State, inst *fsm.Installation) string {
	if d := inst.Deploying(); d != nil {
		return fmt.Sprintf("release %d of %q is rolling out; scale after it finished", d.Version, inst.Name)
	}
	for _, in := range st.InstancesOf(inst.Name) {
		if in.State == fsm.InstanceDraining {
			return fmt.Sprintf("replaced instances of %q are draining; scale in a few seconds", inst.Name)
		}
	}
	return ""
}

// decodeOptional is decode for a body that may be empty (then v keeps its
// zero value).
func (s *Server) decodeOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := jsonhttp.Decode(w, r, v, s.cfg.MaxBodyBytes); err != nil && !errors.Is(err, jsonhttp.ErrEmptyBody) {
		writeError(w, jsonhttp.StatusOf(err), jsonhttp.MessageOf(err))
		return false
	}
	return true
}
