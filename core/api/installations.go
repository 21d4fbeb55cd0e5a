package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"time"

	"potluck/core/fsm"
	"potluck/core/scheduler"
)

// Bounds and defaults of an installation (per instance for cpus and
// memory_mb).
const (
	MaxFronts       = 64  // fronts: 1..MaxFronts
	MaxBacks        = 256 // backs: 1..MaxBacks
	MaxDomainLength = 253 // the longest DNS name

	DefaultCPUs = 0.5
	MinCPUs     = 0.01
	MaxCPUs     = 256

	DefaultMemoryMB = 256
	MinMemoryMB     = 6 // Docker refuses less
	MaxMemoryMB     = 1 << 22

	MaxEnvVars  = 128  // env variables
	MaxEnvValue = 4096 // bytes of one env value
)

var (
	domainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

type createInstallationRequest struct {
	Name          string            `json:"name"`
	App           string            `json:"app"`
	Fronts        int               `json:"fronts"`
	Backs         int               `json:"backs"`
	Domain        string            `json:"domain"`
	CPUs          float64           `json:"cpus"`      // 0 = DefaultCPUs
	MemoryMB      int64             `json:"memory_mb"` // 0 = DefaultMemoryMB
	DiskMB        int64             `json:"disk_mb"`   // 0 = the image's size
	Env           map[string]string `json:"env"`
	ContainerPort int               `json:"container_port"` // 0 = the app's
	Health        *healthRequest    `json:"health"`         // nil = the defaults
	// Placement: requirements (arch=amd64, labels), spread constraints,
	// instances per Back and the policy (spread, pack); nil = the
	// cluster's policy, one instance per Back.
	Placement *fsm.Placement `json:"placement"`
	// TLS: HTTPS for the domain (acme or off here; a manual certificate
	// is uploaded with PUT .../tls); nil: plain HTTP.
	TLS *tlsRequest `json:"tls"`
}

// check fills in the defaults and validates the request.
func (req *createInstallationRequest) check() error {
	var p problems
	p.addErr(checkNewName("installation", req.Name))
	if req.Fronts < 1 || req.Fronts > MaxFronts {
		p.add("fronts must be between 1 and %d", MaxFronts)
	}
	if req.Backs < 1 || req.Backs > MaxBacks {
		p.add("backs must be between 1 and %d", MaxBacks)
	}
	if len(req.Domain) > MaxDomainLength || !domainPattern.MatchString(req.Domain) {
		p.add("domain must be a lowercase DNS name such as hello.example.com")
	}
	if req.CPUs == 0 {
		req.CPUs = DefaultCPUs
	}
	if req.CPUs < MinCPUs || req.CPUs > MaxCPUs || math.IsNaN(req.CPUs) {
		p.add("cpus must be between %g and %d (default %g)", MinCPUs, MaxCPUs, DefaultCPUs)
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = DefaultMemoryMB
	}
	if req.MemoryMB < MinMemoryMB || req.MemoryMB > MaxMemoryMB {
		p.add("memory_mb must be at least %d (default %d)", MinMemoryMB, DefaultMemoryMB)
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
	if err := scheduler.ValidatePlacement(req.Placement); err != nil {
		p.add("placement: %v", err)
	}
	if req.TLS != nil && req.TLS.Mode == fsm.TLSManual {
		p.add("tls mode manual: create the installation, then upload the certificate with PUT /v1/installations/%s/tls", req.Name)
	} else if _, err := req.TLS.check(req.Domain, time.Now()); err != nil {
		p.addErr(err)
	}
	return p.err()
}

type scaleRequest struct {
	Fronts *int `json:"fronts"` // nil: unchanged
	Backs  *int `json:"backs"`  // nil: unchanged
}

func (req *scaleRequest) check() error {
	if req.Fronts == nil && req.Backs == nil {
		return errors.New("give fronts, backs or both")
	}
	if req.Fronts != nil && (*req.Fronts < 1 || *req.Fronts > MaxFronts) {
		return fmt.Errorf("fronts must be between 1 and %d", MaxFronts)
	}
	if req.Backs != nil && (*req.Backs < 1 || *req.Backs > MaxBacks) {
		return fmt.Errorf("backs must be between 1 and %d (delete the installation to stop it)", MaxBacks)
	}
	return nil
}

// InstanceView is an instance with where it runs.
type InstanceView struct {
	*fsm.Instance
	App        string `json:"app"`
	HostName   string `json:"host_name"`
	TunnelAddr string `json:"tunnel_address"`
}

// FrontView is a Front serving an installation.
type FrontView struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Endpoint  string         `json:"endpoint"`             // WireGuard (UDP), for Backs
	PublicURL string         `json:"public_url,omitempty"` // where clients reach it: point DNS here
	Status    fsm.HostStatus `json:"status"`
}

// InstallationView is an installation with its instances and Fronts.
type InstallationView struct {
	*fsm.Installation
	URL string `json:"url"`
	// TLSStatus is the Fronts' last word on the domain's certificate
	// (obtaining, valid until, or the error and the next attempt).
	TLSStatus     *fsm.TLSStatus `json:"tls_status,omitempty"`
	InstanceViews []InstanceView `json:"instances"`
	FrontViews    []FrontView    `json:"front_details"`
}

func instanceView(st *fsm.State, in *fsm.Instance) InstanceView {
	v := InstanceView{Instance: in}
	if inst := st.Installations[in.Installation]; inst != nil {
		v.App = inst.App
	}
	if h := st.Hosts[in.HostID]; h != nil {
		v.HostName, v.TunnelAddr = h.Name, h.TunnelAddr.String()
	}
	return v
}

func installationView(st *fsm.State, inst *fsm.Installation) InstallationView {
	v := InstallationView{Installation: inst, URL: "http://" + inst.Domain + "/", InstanceViews: []InstanceView{}, FrontViews: []FrontView{}}
	if inst.TLS != nil && inst.TLS.Mode != fsm.TLSOff {
		v.URL = "https://" + inst.Domain + "/"
		v.TLSStatus = st.TLSStatus[inst.Domain]
	}
	for _, in := range st.InstancesOf(inst.Name) {
		v.InstanceViews = append(v.InstanceViews, instanceView(st, in))
	}
	for _, id := range inst.FrontHosts {
		if h := st.Hosts[id]; h != nil {
			v.FrontViews = append(v.FrontViews, FrontView{ID: h.ID, Name: h.Name, Endpoint: h.Endpoint, PublicURL: h.PublicURL, Status: h.Status})
		}
	}
	return v
}

func (s *Server) createInstallation(w http.ResponseWriter, r *http.Request) {
	var req createInstallationRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		app := st.Apps[req.App]
		if app == nil {
			return nil, &fsm.Error{Code: fsm.CodeInvalid, Message: fmt.Sprintf("unknown app %q; upload it or register an image first", req.App)}
		}
		if _, ok := st.Installations[req.Name]; ok {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("installation %q already exists", req.Name)}
		}
		port := req.ContainerPort
		if port == 0 {
			port = app.ContainerPort
		}
		if port == 0 {
			return nil, &fsm.Error{Code: fsm.CodeInvalid, Message: "container_port is required: the app does not declare one"}
		}
		disk := req.DiskMB
		if disk == 0 {
			disk = max(1, (app.Size+(1<<20)-1)>>20)
		}
		inst := &fsm.Installation{
			Name: req.Name, App: req.App, Fronts: req.Fronts, Backs: req.Backs, Domain: req.Domain,
			PerInstance: fsm.Resources{MilliCPU: int64(math.Round(req.CPUs * 1000)), MemoryMB: req.MemoryMB, DiskMB: disk},
			Env:         req.Env, ContainerPort: port, Placement: req.Placement,
		}
		inst.Health, _ = req.Health.check()
		inst.TLS, _ = req.TLS.check(req.Domain, now)
		if inst.TLS != nil && inst.TLS.Mode == fsm.TLSOff && !inst.TLS.RedirectHTTP && inst.TLS.HSTSMaxAge == 0 {
			inst.TLS = nil
		}
		fronts, instances, err := scheduler.PlanInstallation(st, inst, scheduler.NewInstanceID, scheduler.Measured(st, s.cfg.Usage)...)
		if err != nil {
			return nil, err
		}
		inst.FrontHosts = fronts
		return &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: inst, Instances: instances}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.writeInstallation(w, http.StatusCreated, res.Ref)
}

// writeInstallation answers with the installation a write just changed.
func (s *Server) writeInstallation(w http.ResponseWriter, code int, name string) {
	st := s.node.State()
	inst := st.Installations[name]
	if inst == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("installation %q was deleted meanwhile", name))
		return
	}
	writeJSON(w, code, installationView(st, inst))
}

func (s *Server) listInstallations(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	writePage(s, w, r, st.SortedInstallations(), func(in *fsm.Installation) string { return in.Name },
		func(in *fsm.Installation) InstallationView { return installationView(st, in) })
}

func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	inst := s.installation(w, st, r.PathValue("name"))
	if inst == nil {
		return
	}
	writeJSON(w, http.StatusOK, installationView(st, inst))
}

func (s *Server) scaleInstallation(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req scaleRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := req.check(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		inst := st.Installations[name]
		if inst == nil {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no installation %q", name)}
		}
		if why := rolloutBusy(st, inst); why != "" {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: why}
		}
		fronts, backs := inst.Fronts, inst.Backs
		if req.Fronts != nil {
			fronts = *req.Fronts
		}
		if req.Backs != nil {
			backs = *req.Backs
		}
		plan, err := scheduler.PlanScale(st, name, fronts, backs, scheduler.NewInstanceID, scheduler.Measured(st, s.cfg.Usage)...)
		if err != nil {
			return nil, err
		}
		return &fsm.Command{Type: fsm.CmdPlan, Plan: plan, Name: name}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.writeInstallation(w, http.StatusOK, name)
}

func (s *Server) deleteInstallation(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		// Routes go at once, instances drain, the leader deletes it after.
		return &fsm.Command{Type: fsm.CmdRetireInstallation, Name: name}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	if s.cfg.DeleteWait > 0 && !s.waitGone(r.Context(), name, s.cfg.DeleteWait) {
		writeJSON(w, http.StatusAccepted, map[string]string{"status": "deleting", "message": "its instances are draining; it goes when they have"})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// waitGone waits, at most max, until the installation name is no more.
func (s *Server) waitGone(ctx context.Context, name string, max time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	st := s.node.State()
	for st.Installations[name] != nil {
		if ctx.Err() != nil {
			return false
		}
		st = s.node.Wait(ctx, st.Index)
	}
	return true
}

// listContainers lists every instance of every installation.
func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	writePage(s, w, r, st.SortedInstances(), func(in *fsm.Instance) string { return in.ID },
		func(in *fsm.Instance) InstanceView { return instanceView(st, in) })
}
