package api

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"potluck/agentproto"
	"potluck/core/blobs"
	"potluck/core/fsm"
	"potluck/core/scheduler"
	"potluck/meshnet"
)

var (
	namePattern   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	domainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

func checkName(what, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s name %q: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", what, name)
	}
	return nil
}

// ---- status ----

// NodeView is one core node in /v1/status.
type NodeView struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
	APIURL      string `json:"api_url,omitempty"`
	TunnelAddr  string `json:"tunnel_address,omitempty"`
	Leader      bool   `json:"leader"`
	Voter       bool   `json:"voter"`
}

// StatusView is the body of GET /v1/status.
type StatusView struct {
	Node          string         `json:"node"`
	RaftState     string         `json:"raft_state"`
	Leader        string         `json:"leader"`
	Health        string         `json:"health"` // ok | no_leader
	AppliedIndex  uint64         `json:"applied_index"`
	LastLogIndex  uint64         `json:"last_log_index"`
	StateIndex    uint64         `json:"state_index"`
	Nodes         []NodeView     `json:"nodes"`
	Hosts         map[string]int `json:"hosts"` // count by status
	Apps          int            `json:"apps"`
	Installations int            `json:"installations"`
	Instances     int            `json:"instances"`
}

func (s *Server) getStatus(w http.ResponseWriter, r *http.Request) {
	st := s.node.FSM.State()
	leader := s.node.Leader()
	v := StatusView{
		Node: s.node.ID(), RaftState: s.node.Raft.State().String(), Leader: leader,
		Health: "ok", AppliedIndex: s.node.Raft.AppliedIndex(), LastLogIndex: s.node.Raft.LastIndex(),
		StateIndex: st.Index, Hosts: map[string]int{}, Apps: len(st.Apps),
		Installations: len(st.Installations), Instances: len(st.Instances),
	}
	if leader == "" {
		v.Health = "no_leader"
	}
	servers, err := s.node.Servers()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	for _, srv := range servers {
		nv := NodeView{ID: string(srv.ID), RaftAddress: string(srv.Address), Leader: string(srv.ID) == leader, Voter: srv.Suffrage.String() == "Voter"}
		if c, ok := st.CoreNodes[nv.ID]; ok {
			nv.APIURL = c.APIURL
			if c.TunnelAddr.IsValid() {
				nv.TunnelAddr = c.TunnelAddr.String()
			}
		}
		v.Nodes = append(v.Nodes, nv)
	}
	for _, h := range st.Hosts {
		v.Hosts[string(h.Status)]++
	}
	w.Header().Set(HeaderIndex, strconv.FormatUint(st.Index, 10))
	writeJSON(w, http.StatusOK, v)
}

// ---- tokens ----

type createTokenRequest struct {
	Description string `json:"description"`
	TTL         string `json:"ttl"` // e.g. "24h"; empty = no expiry
}

// TokenView is a join token without its secret.
type TokenView struct {
	ID          string     `json:"id"`
	Description string     `json:"description,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	Revoked     bool       `json:"revoked"`
	Token       string     `json:"token,omitempty"` // only in the create response
}

func tokenView(t *fsm.JoinToken) TokenView {
	return TokenView{ID: t.ID, Description: t.Description, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked}
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req createTokenRequest
	if !s.decode(w, r, &req) {
		return
	}
	if len(req.Description) > 256 {
		writeError(w, http.StatusBadRequest, "description longer than 256 characters")
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "ttl must be a positive duration such as 24h")
			return
		}
		ttl = d
	}
	secret, id := NewJoinToken()
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		t := &fsm.JoinToken{ID: id, Hash: HashToken(secret), Description: req.Description}
		if ttl > 0 {
			exp := now.Add(ttl)
			t.ExpiresAt = &exp
		}
		return &fsm.Command{Type: fsm.CmdCreateToken, Token: t}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	t := s.node.FSM.State().Tokens[res.Ref]
	if t == nil {
		writeError(w, http.StatusNotFound, "token was revoked meanwhile")
		return
	}
	v := tokenView(t)
	if !res.Replayed {
		v.Token = secret
	}
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	out := []TokenView{}
	for _, t := range st.SortedTokens() {
		out = append(out, tokenView(t))
	}
	writeJSON(w, http.StatusOK, limitList(out, s.cfg.MaxList))
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdRevokeToken, Name: id}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	writeJSON(w, http.StatusOK, tokenView(s.node.FSM.State().Tokens[res.Ref]))
}

// ---- hosts ----

// RegistrationView answers POST /v1/hosts: agentproto.Registration with
// the host's full record and free capacity (a superset an agent decodes).
type RegistrationView struct {
	Host         HostView              `json:"host"`
	TunnelAddr   string                `json:"tunnel_address"`
	TunnelPrefix string                `json:"tunnel_prefix"`
	CorePeers    []agentproto.CorePeer `json:"core_peers"`
}

// HostView is a host with its free capacity.
type HostView struct {
	*fsm.Host
	Free      fsm.Resources `json:"free"`
	Instances int           `json:"instances"`
}

func hostView(st *fsm.State, h *fsm.Host) HostView {
	return HostView{Host: h, Free: h.Capacity.Sub(st.Used(h.ID)), Instances: len(st.InstancesOn(h.ID))}
}

// CorePeers lists the core nodes that hosts must peer with.
func CorePeers(st *fsm.State) []agentproto.CorePeer {
	out := []agentproto.CorePeer{}
	for _, c := range st.SortedCoreNodes() {
		if c.PublicKey == "" || !c.TunnelAddr.IsValid() {
			continue
		}
		out = append(out, agentproto.CorePeer{
			ID: c.ID, PublicKey: c.PublicKey, Endpoint: c.MeshEndpoint, TunnelAddr: c.TunnelAddr.String(),
			AgentURL: fmt.Sprintf("http://%s", netip.AddrPortFrom(c.TunnelAddr, c.AgentPort)),
		})
	}
	return out
}

func (s *Server) registerHost(w http.ResponseWriter, r *http.Request) {
	var req agentproto.RegisterRequest
	if !s.decode(w, r, &req) {
		return
	}
	var problems []string
	if err := checkName("host", req.Name); err != nil {
		problems = append(problems, err.Error())
	}
	role := fsm.Role(req.Role)
	if role != fsm.RoleFront && role != fsm.RoleBack {
		problems = append(problems, `role must be "front" or "back"`)
	}
	if key, err := meshnet.ParsePublicKey(req.PublicKey); err != nil {
		problems = append(problems, "public_key must be a base64 WireGuard public key (32 bytes)")
	} else {
		req.PublicKey = key.String() // canonical form
	}
	if req.CPUs <= 0 || req.CPUs > 1024 || math.IsNaN(req.CPUs) {
		problems = append(problems, "cpus must be between 0 and 1024 (e.g. 2 or 0.5)")
	}
	if req.MemoryMB <= 0 || req.MemoryMB > 1<<24 {
		problems = append(problems, "memory_mb must be positive")
	}
	if req.DiskMB <= 0 || req.DiskMB > 1<<30 {
		problems = append(problems, "disk_mb must be positive")
	}
	if role == fsm.RoleFront {
		if _, err := netip.ParseAddrPort(req.Endpoint); err != nil {
			if host, port, err2 := net.SplitHostPort(req.Endpoint); err2 != nil || host == "" || port == "" {
				problems = append(problems, "endpoint must be the Front's public host:port for WireGuard (UDP)")
			}
		}
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	tokenID, _ := r.Context().Value(joinTokenKey).(string)
	if tokenID == "" {
		tokenID = "operator"
	}
	// An agent that restarts registers again with the same name and key: give
	// it its existing registration.
	if h := s.node.FSM.State().HostByName(req.Name); h != nil && h.PublicKey == req.PublicKey && h.Status != fsm.HostDecommissioned {
		s.writeRegistration(w, http.StatusOK, h.ID)
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		if h := st.HostByName(req.Name); h != nil && h.Status != fsm.HostDecommissioned {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("host name %q is already registered with another public key; pick another name or decommission the old host", req.Name)}
		}
		if h := st.HostByKey(req.PublicKey); h != nil {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("this public key is already registered as host %q; generate a new key pair", h.Name)}
		}
		status := fsm.HostPending
		if s.cfg.ReadyOnRegister {
			status = fsm.HostReady
		}
		h := &fsm.Host{
			ID: newID("h"), Name: req.Name, Role: role, PublicKey: req.PublicKey, // the FSM assigns TunnelAddr
			Capacity: fsm.Resources{MilliCPU: int64(math.Round(req.CPUs * 1000)), MemoryMB: req.MemoryMB, DiskMB: req.DiskMB},
			Status:   status, TokenID: tokenID,
		}
		if role == fsm.RoleFront {
			h.Endpoint = req.Endpoint
		}
		return &fsm.Command{Type: fsm.CmdRegisterHost, Host: h}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.writeRegistration(w, http.StatusCreated, res.Ref)
}

func (s *Server) writeRegistration(w http.ResponseWriter, code int, hostID string) {
	st := s.node.FSM.State()
	h := st.Hosts[hostID]
	if h == nil {
		writeError(w, http.StatusNotFound, "host disappeared")
		return
	}
	writeJSON(w, code, RegistrationView{
		Host: hostView(st, h), TunnelAddr: h.TunnelAddr.String(), TunnelPrefix: s.cfg.TunnelPrefix.String(), CorePeers: CorePeers(st),
	})
}

func (s *Server) listHosts(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	out := []HostView{}
	for _, h := range st.SortedHosts() {
		out = append(out, hostView(st, h))
	}
	writeJSON(w, http.StatusOK, limitList(out, s.cfg.MaxList))
}

func findHost(st *fsm.State, ref string) *fsm.Host {
	if h, ok := st.Hosts[ref]; ok {
		return h
	}
	return st.HostByName(ref)
}

func (s *Server) getHost(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	h := findHost(st, r.PathValue("id"))
	if h == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no host %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, hostView(st, h))
}

func (s *Server) decommissionHost(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("id")
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		h := findHost(st, ref)
		if h == nil {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no host %q", ref)}
		}
		if h.Status == fsm.HostDecommissioned || h.Status == fsm.HostDraining {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("host %q is already %s", h.Name, h.Status)}
		}
		plan, err := scheduler.PlanDecommission(st, []string{h.ID}, scheduler.NewInstanceID)
		if err != nil {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("cannot drain host %q: %v", h.Name, err)}
		}
		return &fsm.Command{Type: fsm.CmdPlan, Plan: plan, Name: h.ID}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.FSM.State()
	h := findHost(st, ref)
	writeJSON(w, http.StatusOK, hostView(st, h))
}

// ---- apps ----

type createAppRequest struct {
	Name          string `json:"name"`
	Image         string `json:"image"`
	ContainerPort int    `json:"container_port"`
}

// AppView is an app with the installations that use it.
type AppView struct {
	*fsm.App
	UsedBy []string `json:"used_by"`
}

func appView(st *fsm.State, a *fsm.App) AppView {
	used := st.AppInUse(a.Name)
	if used == nil {
		used = []string{}
	}
	return AppView{App: a, UsedBy: used}
}

var imagePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$`)

func (s *Server) createImageApp(w http.ResponseWriter, r *http.Request) {
	var req createAppRequest
	if !s.decode(w, r, &req) {
		return
	}
	var problems []string
	if err := checkName("app", req.Name); err != nil {
		problems = append(problems, err.Error())
	}
	if !imagePattern.MatchString(req.Image) {
		problems = append(problems, "image must be an image reference such as registry.example/team/app:1.2")
	}
	if req.ContainerPort < 0 || req.ContainerPort > 65535 {
		problems = append(problems, "container_port must be 1-65535")
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, strings.Join(problems, "; "))
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: req.Name, Image: req.Image, ContainerPort: req.ContainerPort}}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.FSM.State()
	writeJSON(w, http.StatusCreated, appView(st, st.Apps[res.Ref]))
}

func (s *Server) uploadApp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := checkName("app", name); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	port := 0
	if p := r.URL.Query().Get("container_port"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			writeError(w, http.StatusBadRequest, "container_port must be 1-65535")
			return
		}
		port = n
	}
	if rec, ok := s.node.FSM.Lookup(requestID(r)); ok && rec.Error == "" {
		st := s.node.FSM.State()
		if a := st.Apps[rec.Ref]; a != nil {
			writeJSON(w, http.StatusCreated, appView(st, a))
			return
		}
	}
	if _, ok := s.node.FSM.State().Apps[name]; ok {
		writeError(w, http.StatusConflict, fmt.Sprintf("app %q already exists; delete it first or pick another name", name))
		return
	}
	if r.ContentLength > s.cfg.MaxUploadBytes {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("image tarball larger than the limit of %d bytes", s.cfg.MaxUploadBytes))
		return
	}
	info, err := s.cfg.Blobs.Put(r.Body, s.cfg.MaxUploadBytes, "")
	if err != nil {
		var inv *blobs.InvalidError
		switch {
		case errors.Is(err, blobs.ErrTooLarge):
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("image tarball larger than the limit of %d bytes", s.cfg.MaxUploadBytes))
		case errors.As(err, &inv):
			writeError(w, http.StatusBadRequest, err.Error()+" (upload the output of `docker save IMAGE`)")
		default:
			writeError(w, http.StatusBadRequest, "reading the upload failed: "+err.Error())
		}
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdCreateApp, App: &fsm.App{Name: name, Image: info.Image, Digest: info.Digest, Size: info.Size, ContainerPort: port}}, nil
	})
	if err != nil || res.Err != nil {
		s.removeUnusedBlob(info.Digest)
	}
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.FSM.State()
	writeJSON(w, http.StatusCreated, appView(st, st.Apps[res.Ref]))
}

func (s *Server) removeUnusedBlob(digest string) {
	for _, a := range s.node.FSM.State().Apps {
		if a.Digest == digest {
			return
		}
	}
	if err := s.cfg.Blobs.Remove(digest); err != nil {
		s.log.Warn("remove unused blob", "digest", digest, "err", err)
	}
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	out := []AppView{}
	for _, a := range st.SortedApps() {
		out = append(out, appView(st, a))
	}
	writeJSON(w, http.StatusOK, limitList(out, s.cfg.MaxList))
}

func (s *Server) getApp(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	a := st.Apps[r.PathValue("name")]
	if a == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no app %q", r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, appView(st, a))
}

func (s *Server) deleteApp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var digest string
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		if a := st.Apps[name]; a != nil {
			digest = a.Digest
		}
		return &fsm.Command{Type: fsm.CmdDeleteApp, Name: name}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	if digest != "" {
		s.removeUnusedBlob(digest)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getBlob(w http.ResponseWriter, r *http.Request) {
	digest := r.PathValue("digest")
	if _, err := blobs.ParseDigest(digest); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	f, size, err := s.cfg.Blobs.Open(digest)
	if err != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("blob %s is not on this node", digest))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	http.ServeContent(w, r, "", time.Time{}, f)
}

// ---- installations ----

type createInstallationRequest struct {
	Name          string            `json:"name"`
	App           string            `json:"app"`
	Fronts        int               `json:"fronts"`
	Backs         int               `json:"backs"`
	Domain        string            `json:"domain"`
	CPUs          float64           `json:"cpus"`
	MemoryMB      int64             `json:"memory_mb"`
	DiskMB        int64             `json:"disk_mb"`
	Env           map[string]string `json:"env"`
	ContainerPort int               `json:"container_port"`
}

type scaleRequest struct {
	Fronts *int `json:"fronts"`
	Backs  *int `json:"backs"`
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
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Endpoint string         `json:"endpoint"`
	Status   fsm.HostStatus `json:"status"`
}

// InstallationView is an installation with its instances and Fronts.
type InstallationView struct {
	*fsm.Installation
	URL           string         `json:"url"`
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
	for _, in := range st.InstancesOf(inst.Name) {
		v.InstanceViews = append(v.InstanceViews, instanceView(st, in))
	}
	for _, id := range inst.FrontHosts {
		if h := st.Hosts[id]; h != nil {
			v.FrontViews = append(v.FrontViews, FrontView{ID: h.ID, Name: h.Name, Endpoint: h.Endpoint, Status: h.Status})
		}
	}
	return v
}

func (s *Server) createInstallation(w http.ResponseWriter, r *http.Request) {
	var req createInstallationRequest
	if !s.decode(w, r, &req) {
		return
	}
	var problems []string
	if err := checkName("installation", req.Name); err != nil {
		problems = append(problems, err.Error())
	}
	if req.Fronts < 1 || req.Fronts > 64 {
		problems = append(problems, "fronts must be between 1 and 64")
	}
	if req.Backs < 1 || req.Backs > 256 {
		problems = append(problems, "backs must be between 1 and 256")
	}
	if len(req.Domain) > 253 || !domainPattern.MatchString(req.Domain) {
		problems = append(problems, "domain must be a lowercase DNS name such as hello.example.com")
	}
	if req.CPUs == 0 {
		req.CPUs = 0.5
	}
	if req.CPUs < 0.01 || req.CPUs > 256 || math.IsNaN(req.CPUs) {
		problems = append(problems, "cpus must be between 0.01 and 256 (default 0.5)")
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = 256
	}
	if req.MemoryMB < 6 || req.MemoryMB > 1<<22 {
		problems = append(problems, "memory_mb must be at least 6 (default 256)")
	}
	if req.DiskMB < 0 {
		problems = append(problems, "disk_mb must not be negative")
	}
	if req.ContainerPort < 0 || req.ContainerPort > 65535 {
		problems = append(problems, "container_port must be 1-65535")
	}
	if len(req.Env) > 128 {
		problems = append(problems, "at most 128 env variables")
	}
	for k, v := range req.Env {
		if !envKeyPattern.MatchString(k) || len(v) > 4096 {
			problems = append(problems, fmt.Sprintf("env %q: names are letters, digits and _, values at most 4096 bytes", k))
			break
		}
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, strings.Join(problems, "; "))
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
			Env:         req.Env, ContainerPort: port,
		}
		fronts, instances, err := scheduler.PlanInstallation(st, inst, scheduler.NewInstanceID)
		if err != nil {
			return nil, err
		}
		inst.FrontHosts = fronts
		return &fsm.Command{Type: fsm.CmdCreateInstallation, Installation: inst, Instances: instances}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.FSM.State()
	inst := st.Installations[res.Ref]
	if inst == nil {
		writeError(w, http.StatusNotFound, "installation was deleted meanwhile")
		return
	}
	writeJSON(w, http.StatusCreated, installationView(st, inst))
}

func (s *Server) listInstallations(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	out := []InstallationView{}
	for _, inst := range st.SortedInstallations() {
		out = append(out, installationView(st, inst))
	}
	writeJSON(w, http.StatusOK, limitList(out, s.cfg.MaxList))
}

func (s *Server) getInstallation(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	inst := st.Installations[r.PathValue("name")]
	if inst == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no installation %q", r.PathValue("name")))
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
	if req.Fronts == nil && req.Backs == nil {
		writeError(w, http.StatusBadRequest, "give fronts, backs or both")
		return
	}
	if req.Fronts != nil && (*req.Fronts < 1 || *req.Fronts > 64) {
		writeError(w, http.StatusBadRequest, "fronts must be between 1 and 64")
		return
	}
	if req.Backs != nil && (*req.Backs < 1 || *req.Backs > 256) {
		writeError(w, http.StatusBadRequest, "backs must be between 1 and 256 (delete the installation to stop it)")
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		inst := st.Installations[name]
		if inst == nil {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no installation %q", name)}
		}
		fronts, backs := inst.Fronts, inst.Backs
		if req.Fronts != nil {
			fronts = *req.Fronts
		}
		if req.Backs != nil {
			backs = *req.Backs
		}
		plan, err := scheduler.PlanScale(st, name, fronts, backs, scheduler.NewInstanceID)
		if err != nil {
			return nil, err
		}
		return &fsm.Command{Type: fsm.CmdPlan, Plan: plan, Name: name}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.FSM.State()
	if inst := st.Installations[name]; inst != nil {
		writeJSON(w, http.StatusOK, installationView(st, inst))
		return
	}
	writeError(w, http.StatusNotFound, "installation was deleted meanwhile")
}

func (s *Server) deleteInstallation(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdDeleteInstallation, Name: name}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request) {
	st, ok := s.blockingState(w, r)
	if !ok {
		return
	}
	out := []InstanceView{}
	for _, in := range st.SortedInstances() {
		out = append(out, instanceView(st, in))
	}
	writeJSON(w, http.StatusOK, limitList(out, s.cfg.MaxList))
}

// ---- internal ----

func (s *Server) upsertCoreNode(w http.ResponseWriter, r *http.Request) {
	var req fsm.CoreNode
	if !s.decode(w, r, &req) {
		return
	}
	if req.ID == "" || req.APIURL == "" {
		writeError(w, http.StatusBadRequest, "core node needs id and api_url")
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		return &fsm.Command{Type: fsm.CmdUpsertCoreNode, CoreNode: &req}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	writeJSON(w, http.StatusOK, s.node.FSM.State().CoreNodes[req.ID])
}

// HeartbeatRequest is what a follower forwards for an agent.
type HeartbeatRequest struct {
	HostID    string                      `json:"host_id"`
	Instances []agentproto.InstanceReport `json:"instances"`
}

func (s *Server) internalHeartbeat(w http.ResponseWriter, r *http.Request) {
	var req HeartbeatRequest
	if !s.decode(w, r, &req) {
		return
	}
	if s.cfg.Heartbeat == nil {
		writeError(w, http.StatusNotImplemented, "heartbeats are not handled by this node")
		return
	}
	if err := s.cfg.Heartbeat(r.Context(), req.HostID, req.Instances); err != nil {
		writeError(w, statusOrUnavailable(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func statusOrUnavailable(err error) int {
	if fsm.CodeOf(err) != "" {
		return statusOf(err)
	}
	return http.StatusServiceUnavailable
}

// ---- raft membership ----

type addVoterRequest struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raft_address"`
}

var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (s *Server) addVoter(w http.ResponseWriter, r *http.Request) {
	var req addVoterRequest
	if !s.decode(w, r, &req) {
		return
	}
	if !nodeIDPattern.MatchString(req.ID) {
		writeError(w, http.StatusBadRequest, "id must be 1-64 of A-Za-z0-9._- (the new node's --id)")
		return
	}
	if _, _, err := net.SplitHostPort(req.RaftAddress); err != nil {
		writeError(w, http.StatusBadRequest, "raft_address must be the new node's raft host:port")
		return
	}
	servers, err := s.node.Servers()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	for _, srv := range servers {
		if string(srv.ID) == req.ID && string(srv.Address) != req.RaftAddress {
			writeError(w, http.StatusConflict, fmt.Sprintf("node %q is already a member at %s; remove it first", req.ID, srv.Address))
			return
		}
		if string(srv.ID) != req.ID && string(srv.Address) == req.RaftAddress {
			writeError(w, http.StatusConflict, fmt.Sprintf("raft address %s belongs to node %q", req.RaftAddress, srv.ID))
			return
		}
	}
	if err := s.node.AddVoter(req.ID, req.RaftAddress); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.log.Info("added raft voter", "id", req.ID, "raft_address", req.RaftAddress)
	s.getStatus(w, r)
}

func (s *Server) removeVoter(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	servers, err := s.node.Servers()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	found := false
	for _, srv := range servers {
		found = found || string(srv.ID) == id
	}
	if !found {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no raft member %q", id))
		return
	}
	if len(servers) == 1 {
		writeError(w, http.StatusConflict, "cannot remove the only member of the group")
		return
	}
	if err := s.node.RemoveServer(id); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	// Hosts stop peering with it once its record is gone.
	if _, ok := s.node.FSM.State().CoreNodes[id]; ok && s.node.IsLeader() {
		res, err := s.node.Decide(r.Context(), "", func(st *fsm.State, now time.Time) (*fsm.Command, error) {
			if _, ok := st.CoreNodes[id]; !ok {
				return nil, nil
			}
			return &fsm.Command{Type: fsm.CmdRemoveCoreNode, Name: id}, nil
		})
		if err == nil && res.Err != nil {
			err = res.Err
		}
		if err != nil {
			s.log.Warn("remove core node record", "id", id, "err", err)
		}
	}
	s.log.Info("removed raft member", "id", id)
	w.WriteHeader(http.StatusNoContent)
}
