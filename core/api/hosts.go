package api

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"time"

	"potluck/agentproto"
	"potluck/core/fsm"
	"potluck/core/scheduler"
	"potluck/meshnet"
)

// Bounds of the capacity a host may declare at registration.
const (
	MaxHostCPUs     = 1024    // cpus
	MaxHostMemoryMB = 1 << 24 // memory_mb: 16 TiB
	MaxHostDiskMB   = 1 << 30 // disk_mb: 1 PiB
)

// featurePattern is what a measured host feature (arch, storage) may be.
var featurePattern = regexp.MustCompile(`^[a-z0-9_]{1,16}$`)

// checkRegistration validates a host's registration, puts its public key in
// canonical form, and returns its role.
func checkRegistration(req *agentproto.RegisterRequest) (fsm.Role, error) {
	var p problems
	p.addErr(checkName("host", req.Name))
	role := fsm.Role(req.Role)
	if role != fsm.RoleFront && role != fsm.RoleBack {
		p.add(`role must be "front" or "back"`)
	}
	if key, err := meshnet.ParsePublicKey(req.PublicKey); err != nil {
		p.add("public_key must be a base64 WireGuard public key (32 bytes)")
	} else {
		req.PublicKey = key.String()
	}
	if req.CPUs <= 0 || req.CPUs > MaxHostCPUs || math.IsNaN(req.CPUs) {
		p.add("cpus must be between 0 and %d (e.g. 2 or 0.5)", MaxHostCPUs)
	}
	if req.MemoryMB <= 0 || req.MemoryMB > MaxHostMemoryMB {
		p.add("memory_mb must be positive")
	}
	if req.DiskMB <= 0 || req.DiskMB > MaxHostDiskMB {
		p.add("disk_mb must be positive")
	}
	if m := req.Measured; m != nil {
		switch {
		case m.CPUs <= 0 || m.CPUs > MaxHostCPUs || math.IsNaN(m.CPUs), m.MemoryMB <= 0 || m.MemoryMB > MaxHostMemoryMB, m.DiskMB < 0 || m.DiskMB > MaxHostDiskMB:
			p.add("measured capacity out of range (cpus 0-%d, memory_mb and disk_mb positive)", MaxHostCPUs)
		case m.Arch != "" && !featurePattern.MatchString(m.Arch), m.Storage != "" && !featurePattern.MatchString(m.Storage):
			p.add("measured arch and storage must be short lower-case names (amd64, ssd)")
		default:
			// An agent refuses to declare more than it measured; a request
			// that does anyway did not come from an honest agent.
			if req.CPUs > m.CPUs {
				p.add("cpus %g is more than the %g the host measured", req.CPUs, m.CPUs)
			}
			if req.MemoryMB > m.MemoryMB {
				p.add("memory_mb %d is more than the %d the host measured", req.MemoryMB, m.MemoryMB)
			}
			if req.DiskMB > m.DiskMB {
				p.add("disk_mb %d is more than the %d free the host measured", req.DiskMB, m.DiskMB)
			}
		}
	}
	if req.PublicURL != "" {
		if role != fsm.RoleFront {
			p.add("public_url is for Fronts only")
		} else if err := checkPublicURL(req.PublicURL); err != nil {
			p.addErr(err)
		}
	}
	p.addErr(checkRegion(req.Region))
	if role == fsm.RoleFront {
		if _, err := netip.ParseAddrPort(req.Endpoint); err != nil {
			if host, port, err2 := net.SplitHostPort(req.Endpoint); err2 != nil || host == "" || port == "" {
				p.add("endpoint must be the Front's public host:port for WireGuard (UDP)")
			}
		}
	}
	return role, p.err()
}

// RegistrationView answers POST /v1/hosts: agentproto.Registration with
// the host's full record and free capacity (a superset an agent decodes).
type RegistrationView struct {
	Host         HostView              `json:"host"`
	TunnelAddr   string                `json:"tunnel_address"`
	TunnelPrefix string                `json:"tunnel_prefix"`
	CorePeers    []agentproto.CorePeer `json:"core_peers"`
}

// HostView is a host with its free capacity: what the scheduler may still
// place there (declared capacity capped by the measured one, less what its
// instances reserve).
type HostView struct {
	*fsm.Host
	Free      fsm.Resources `json:"free"`
	Instances int           `json:"instances"`
	// LastHeartbeat is when the host last heartbeated to the leader, as the
	// leader answering knows it (heartbeats.go); nil when it does not.
	LastHeartbeat *time.Time `json:"last_heartbeat,omitempty"`
}

func hostView(st *fsm.State, h *fsm.Host) HostView {
	return HostView{Host: h, Free: h.Schedulable().Sub(st.Reserved(h.ID)), Instances: len(st.InstancesOn(h.ID))}
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
	role, err := checkRegistration(&req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tokenID := fsm.OperatorTokenID // the operator and core nodes may register hosts too
	if c := callerOf(r); c != nil && c.kind == callerJoin {
		tokenID = c.tokenID
	}
	// An agent that restarts registers again with the same name and key: give
	// it its existing registration (the same role only: a role is not
	// changed by registering again).
	if h := s.node.State().HostByName(req.Name); h != nil && h.PublicKey == req.PublicKey && h.Status != fsm.HostDecommissioned {
		if h.Role != role {
			writeError(w, http.StatusConflict, fmt.Sprintf("host %q is registered as a %s; its role cannot change by registering again: decommission it and register a new host", h.Name, h.Role))
			return
		}
		if a := announced(h.ID, role, &req); a.Region != h.Region || a.PublicURL != h.PublicURL || a.HTTPGateway != h.HTTPGateway {
			if !s.setHost(w, r, fsm.CmdSetHostAnnounced, a) {
				return
			}
		}
		s.writeRegistration(w, http.StatusOK, h.ID)
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		// Every mesh member's key is unique; a host holding a core node's
		// key would break every node's peer list.
		if c := st.CoreNodeByKey(req.PublicKey); c != nil {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("this public key is core node %s's; every mesh member needs its own key pair", c.ID)}
		}
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
		h := announced(newID("h"), role, &req)
		h.Name, h.Role, h.PublicKey = req.Name, role, req.PublicKey // the FSM assigns TunnelAddr
		h.Capacity = fsm.Resources{MilliCPU: int64(math.Round(req.CPUs * 1000)), MemoryMB: req.MemoryMB, DiskMB: req.DiskMB}
		h.Status, h.TokenID = status, tokenID
		if m := req.Measured; m != nil {
			h.Measured = &fsm.Resources{MilliCPU: int64(math.Round(m.CPUs * 1000)), MemoryMB: m.MemoryMB, DiskMB: m.DiskMB}
			h.Arch, h.Storage = m.Arch, m.Storage
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

// announced is what req announces of host id, which registers again at
// every start: its region, a Front's public URL, a Back's HTTP gateway.
func announced(id string, role fsm.Role, req *agentproto.RegisterRequest) *fsm.Host {
	h := &fsm.Host{ID: id, Region: req.Region}
	switch role {
	case fsm.RoleFront:
		h.PublicURL = req.PublicURL
	case fsm.RoleBack:
		h.HTTPGateway = req.HTTPGateway
	}
	return h
}

func (s *Server) writeRegistration(w http.ResponseWriter, code int, hostID string) {
	st := s.node.State()
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
	writePage(s, w, r, st.SortedHosts(), func(h *fsm.Host) string { return h.ID },
		func(h *fsm.Host) HostView { return s.withHeartbeat(hostView(st, h)) })
}

// findHost finds a host by id or by name.
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
		s.notFound(w, fmt.Sprintf("no host %q", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, s.withHeartbeat(hostView(st, h)))
}

// HostPatch is the body of PATCH /v1/hosts/{id}: a JSON merge patch
// (RFC 7396) of what the operator sets on a host. An absent field is kept;
// a label set to null is removed.
type HostPatch struct {
	Lender *string            `json:"lender"`
	Labels map[string]*string `json:"labels"`
	// Region is refused with a pointer to where it is set.
	Region *string `json:"region"`
}

// patchHost sets who lends a host and its labels, the features placement
// constraints (requires, spread) name besides the measured ones.
func (s *Server) patchHost(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("id")
	var patch HostPatch
	if !s.decode(w, r, &patch) {
		return
	}
	if patch.Region != nil {
		writeError(w, http.StatusBadRequest, "region is declared by the host's agent (potluck-front/potluck-back --region), not set here")
		return
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, now time.Time) (*fsm.Command, error) {
		h := findHost(st, ref)
		if h == nil {
			return nil, &fsm.Error{Code: fsm.CodeNotFound, Message: fmt.Sprintf("no host %q", ref)}
		}
		lender := h.Lender
		if patch.Lender != nil {
			lender = *patch.Lender
		}
		labels := maps.Clone(h.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range patch.Labels {
			if v == nil {
				delete(labels, k)
			} else {
				labels[k] = *v
			}
		}
		return &fsm.Command{Type: fsm.CmdSetHostLabels, Host: &fsm.Host{ID: h.ID, Lender: lender, Labels: labels}}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.State()
	h := st.Hosts[res.Ref]
	if h == nil {
		s.notFound(w, fmt.Sprintf("no host %q", ref))
		return
	}
	writeJSON(w, http.StatusOK, s.withHeartbeat(hostView(st, h)))
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
		plan, err := scheduler.PlanDecommission(st, []string{h.ID}, scheduler.NewInstanceID, scheduler.Measured(st, s.cfg.Usage)...)
		if err != nil {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("cannot drain host %q: %v", h.Name, err)}
		}
		return &fsm.Command{Type: fsm.CmdPlan, Plan: plan, Name: h.ID}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	st := s.node.State()
	h := findHost(st, ref)
	writeJSON(w, http.StatusOK, s.withHeartbeat(hostView(st, h)))
}
