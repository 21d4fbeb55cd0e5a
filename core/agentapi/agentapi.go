// Package agentapi serves the API that Front and Back agents use over the
// WireGuard mesh: their desired state (mesh peers, instances to run, routes
// to serve), image blob downloads, and heartbeats with instance status. It is
// served only on a core node's tunnel address, and a caller is identified by
// the WireGuard key of the tunnel peer its source address belongs to
// (WireGuard's cryptokey routing makes that authentic), so agents need no
// other credential.
package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"potluck/core/blobs"
	"potluck/core/fsm"
)

// Identify returns the WireGuard public key (base64) of the peer that sent r.
type Identify func(r *http.Request) (publicKey string, ok bool)

// HeartbeatFunc delivers a heartbeat to the leader.
type HeartbeatFunc func(ctx context.Context, hostID string, reports []fsm.InstanceUpdate) error

// StateSource gives the current replicated state and blocking waits on it.
type StateSource interface {
	State() *fsm.State
	Wait(ctx context.Context, index uint64) *fsm.State
}

// Config wires the agent API.
type Config struct {
	State     StateSource
	Blobs     *blobs.Store
	Identify  Identify
	Heartbeat HeartbeatFunc
	Logger    *slog.Logger
}

// Peer is a mesh peer an agent must configure.
type Peer struct {
	Name          string `json:"name"`
	Role          string `json:"role"` // core | front | back
	PublicKey     string `json:"public_key"`
	TunnelAddress string `json:"tunnel_address"`
	Endpoint      string `json:"endpoint,omitempty"`  // empty: learn it from the peer's packets (NATed)
	Hub           bool   `json:"hub"`                 // initiate and keep alive (core nodes and Fronts)
	AgentURL      string `json:"agent_url,omitempty"` // core nodes: where this API is served on the tunnel
}

// Instance is a container a Back must run.
type Instance struct {
	ID            string            `json:"id"`
	Installation  string            `json:"installation"`
	App           string            `json:"app"`
	Image         string            `json:"image"`
	Digest        string            `json:"digest,omitempty"`    // set when the image is an uploaded tarball
	BlobPath      string            `json:"blob_path,omitempty"` // GET this on the agent API to download it
	Port          int               `json:"port"`                // host port (5000-6000), exposed on the tunnel address
	ContainerPort int               `json:"container_port"`
	MilliCPU      int64             `json:"milli_cpu"`
	MemoryMB      int64             `json:"memory_mb"`
	Env           map[string]string `json:"env,omitempty"`
	AllowedFrom   []string          `json:"allowed_from"` // tunnel addresses of the installation's Fronts
	State         fsm.InstanceState `json:"state"`
}

// Backend is one upstream of a route.
type Backend struct {
	InstanceID string            `json:"instance_id"`
	Address    string            `json:"address"` // tunnel address:port of the Back
	State      fsm.InstanceState `json:"state"`
}

// Route is a domain a Front serves.
type Route struct {
	Installation string    `json:"installation"`
	Domain       string    `json:"domain"`
	Backends     []Backend `json:"backends"`
}

// DesiredState is everything an agent needs; Index is for blocking queries.
type DesiredState struct {
	Index     uint64     `json:"index"`
	Host      *fsm.Host  `json:"host"`
	Peers     []Peer     `json:"peers"`
	Instances []Instance `json:"instances"` // Backs
	Routes    []Route    `json:"routes"`    // Fronts
}

// HeartbeatRequest is the body of POST /v1/agent/heartbeat.
type HeartbeatRequest struct {
	Instances []fsm.InstanceUpdate `json:"instances"`
}

// Handler serves the agent API.
type Handler struct {
	cfg Config
	mux *http.ServeMux
}

// New returns the agent API handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /v1/agent/state", h.host(h.getState))
	h.mux.HandleFunc("GET /v1/agent/blobs/{digest}", h.host(h.getBlob))
	h.mux.HandleFunc("POST /v1/agent/heartbeat", h.host(h.heartbeat))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such agent endpoint: "+r.Method+" "+r.URL.Path)
	})
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

type hostHandler func(w http.ResponseWriter, r *http.Request, host *fsm.Host)

// host resolves the caller's tunnel identity to a registered host.
func (h *Handler) host(next hostHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := h.cfg.Identify(r)
		if !ok {
			writeError(w, http.StatusForbidden, "caller is not a known tunnel peer")
			return
		}
		host := h.cfg.State.State().HostByKey(key)
		if host == nil {
			writeError(w, http.StatusForbidden, "no host is registered with this WireGuard key")
			return
		}
		if host.Status == fsm.HostDecommissioned {
			// 410, not 403: the agent must tell "removed for good" (stand
			// down) from a core node that merely lags behind.
			writeError(w, http.StatusGone, "host is decommissioned")
			return
		}
		next(w, r, host)
	}
}

func (h *Handler) getState(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	st := h.cfg.State.State()
	n, wait, blocking, err := fsm.ParseBlockingQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if blocking {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		st = h.waitForChange(ctx, st, n, host.ID)
	}
	cur := st.Hosts[host.ID]
	if cur == nil || cur.Status == fsm.HostDecommissioned {
		writeGone(w) // decommissioned while the query was waiting
		return
	}
	w.Header().Set("X-Potluck-Index", strconv.FormatUint(st.Index, 10))
	writeJSON(w, http.StatusOK, Desired(st, cur))
}

// waitForChange answers a blocking query. An agent that is behind (the
// state is past its index) gets the state at once. Otherwise it waits until
// this host's desired state differs from the current one, ignoring changes
// elsewhere (other hosts' heartbeats would wake every agent), or until ctx
// ends.
func (h *Handler) waitForChange(ctx context.Context, st *fsm.State, index uint64, hostID string) *fsm.State {
	if st.Index > index {
		return st
	}
	base := fingerprint(st, hostID)
	for range 100_000 { // bounded; each round waits for an apply or ctx
		next := h.cfg.State.Wait(ctx, st.Index)
		if ctx.Err() != nil || next.Index == st.Index {
			return next
		}
		st = next
		if fingerprint(st, hostID) != base {
			return st
		}
	}
	return st
}

// fingerprint identifies a host's desired state apart from the index.
func fingerprint(st *fsm.State, hostID string) string {
	h := st.Hosts[hostID]
	if h == nil {
		return ""
	}
	d := Desired(st, h)
	d.Index = 0
	data, _ := json.Marshal(d)
	return string(data)
}

// Desired computes a host's desired state from the replicated state.
func Desired(st *fsm.State, host *fsm.Host) DesiredState {
	d := DesiredState{Index: st.Index, Host: host, Peers: []Peer{}, Instances: []Instance{}, Routes: []Route{}}
	for _, c := range st.SortedCoreNodes() {
		if c.PublicKey == "" || !c.TunnelAddr.IsValid() {
			continue
		}
		d.Peers = append(d.Peers, Peer{Name: c.ID, Role: "core", PublicKey: c.PublicKey, TunnelAddress: c.TunnelAddr.String(), Endpoint: c.MeshEndpoint, Hub: true,
			AgentURL: "http://" + netip.AddrPortFrom(c.TunnelAddr, c.AgentPort).String()})
	}
	peerSet := map[string]bool{}
	addHostPeer := func(o *fsm.Host) {
		if o == nil || o.ID == host.ID || peerSet[o.ID] || o.Status == fsm.HostDecommissioned {
			return
		}
		peerSet[o.ID] = true
		p := Peer{Name: o.Name, Role: string(o.Role), PublicKey: o.PublicKey, TunnelAddress: o.TunnelAddr.String()}
		if o.Role == fsm.RoleFront {
			p.Endpoint, p.Hub = o.Endpoint, true
		}
		d.Peers = append(d.Peers, p)
	}
	for _, inst := range st.SortedInstallations() {
		mine := host.Role == fsm.RoleFront && contains(inst.FrontHosts, host.ID)
		instances := st.InstancesOf(inst.Name)
		if host.Role == fsm.RoleBack {
			for _, in := range instances {
				mine = mine || in.HostID == host.ID
			}
		}
		if !mine {
			continue
		}
		if host.Role == fsm.RoleFront {
			r := Route{Installation: inst.Name, Domain: inst.Domain, Backends: []Backend{}}
			for _, in := range instances {
				b := st.Hosts[in.HostID]
				// A draining Back keeps serving until its replacement runs.
				if b == nil || (b.Status != fsm.HostReady && b.Status != fsm.HostDraining) || in.State == fsm.InstanceLost {
					continue
				}
				addHostPeer(b)
				r.Backends = append(r.Backends, Backend{InstanceID: in.ID, Address: netip.AddrPortFrom(b.TunnelAddr, uint16(in.Port)).String(), State: in.State})
			}
			d.Routes = append(d.Routes, r)
			continue
		}
		var allowed []string
		for _, f := range inst.FrontHosts {
			if fh := st.Hosts[f]; fh != nil {
				addHostPeer(fh)
				allowed = append(allowed, fh.TunnelAddr.String())
			}
		}
		sort.Strings(allowed)
		app := st.Apps[inst.App]
		for _, in := range instances {
			if in.HostID != host.ID {
				continue
			}
			ai := Instance{
				ID: in.ID, Installation: inst.Name, App: inst.App, Port: in.Port, ContainerPort: inst.ContainerPort,
				MilliCPU: inst.PerInstance.MilliCPU, MemoryMB: inst.PerInstance.MemoryMB, Env: inst.Env,
				AllowedFrom: allowed, State: in.State,
			}
			if app != nil {
				ai.Image, ai.Digest = app.Image, app.Digest
				if app.Digest != "" {
					ai.BlobPath = "/v1/agent/blobs/" + app.Digest
				}
			}
			d.Instances = append(d.Instances, ai)
		}
	}
	return d
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	digest := r.PathValue("digest")
	if _, err := blobs.ParseDigest(digest); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// A host may download only images of instances placed on it.
	allowed := false
	for _, in := range Desired(h.cfg.State.State(), host).Instances {
		allowed = allowed || in.Digest == digest
	}
	if !allowed {
		writeError(w, http.StatusForbidden, "no instance on this host uses blob "+digest)
		return
	}
	f, size, err := h.cfg.Blobs.Open(digest)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "blob not replicated to this core node yet; retry or ask another core node")
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (h *Handler) heartbeat(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	var req HeartbeatRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "malformed heartbeat: "+err.Error())
		return
	}
	if len(req.Instances) > 1024 {
		writeError(w, http.StatusBadRequest, "at most 1024 instance reports per heartbeat")
		return
	}
	for _, u := range req.Instances {
		if err := u.CheckReport(); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if err := h.cfg.Heartbeat(r.Context(), host.ID, req.Instances); err != nil {
		code := http.StatusServiceUnavailable
		var sc interface{ StatusCode() int }
		if errors.As(err, &sc) && sc.StatusCode() < 500 {
			code = sc.StatusCode()
		}
		switch fsm.CodeOf(err) {
		case fsm.CodeInvalid:
			code = http.StatusBadRequest
		case fsm.CodeNotFound:
			code = http.StatusNotFound
		case fsm.CodeConflict:
			code = http.StatusConflict
		}
		writeError(w, code, fmt.Sprintf("heartbeat not recorded: %v", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeGone tells the agent of a decommissioned host to stand down.
func writeGone(w http.ResponseWriter) {
	writeError(w, http.StatusGone, "this host was decommissioned: stop every instance and leave the mesh")
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
