package fsm

import (
	"errors"
	"fmt"
	"net/netip"
	"potluck/meshnet"
	"sort"
	"time"
)

// Code classifies an Apply error so the API can pick the HTTP status.
type Code string

// Error codes.
const (
	CodeInvalid  Code = "invalid"   // 400
	CodeNotFound Code = "not_found" // 404
	CodeConflict Code = "conflict"  // 409
)

// Error is a rejected command. Rejected commands change nothing.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return e.Message }

func errf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the Code of err, or "" when it is not an *Error.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Port range for instances on a Back.
const (
	MinPort = 5000
	MaxPort = 6000
)

// CommandType names a command.
type CommandType string

// Command types.
const (
	CmdSetOperatorToken   CommandType = "set_operator_token"
	CmdUpsertCoreNode     CommandType = "upsert_core_node"
	CmdRemoveCoreNode     CommandType = "remove_core_node"
	CmdCreateToken        CommandType = "create_token"
	CmdRevokeToken        CommandType = "revoke_token"
	CmdRegisterHost       CommandType = "register_host"
	CmdCreateApp          CommandType = "create_app"
	CmdDeleteApp          CommandType = "delete_app"
	CmdCreateInstallation CommandType = "create_installation"
	CmdDeleteInstallation CommandType = "delete_installation"
	CmdPlan               CommandType = "plan"
)

// Command is one replicated write. The leader fills Time, ids and every
// placement decision; Apply only validates and records.
type Command struct {
	Type      CommandType `json:"type"`
	RequestID string      `json:"request_id,omitempty"`
	Time      time.Time   `json:"time"`

	OperatorTokenHash string        `json:"operator_token_hash,omitempty"`
	CoreNode          *CoreNode     `json:"core_node,omitempty"`
	Token             *JoinToken    `json:"token,omitempty"`
	Host              *Host         `json:"host,omitempty"`
	App               *App          `json:"app,omitempty"`
	Installation      *Installation `json:"installation,omitempty"`
	Instances         []*Instance   `json:"instances,omitempty"`
	Name              string        `json:"name,omitempty"` // object to delete or revoke
	Plan              *Plan         `json:"plan,omitempty"`
}

// HostStatusChange sets a host's status.
type HostStatusChange struct {
	HostID string     `json:"host_id"`
	Status HostStatus `json:"status"`
}

// InstanceUpdate sets an instance's state.
type InstanceUpdate struct {
	ID      string        `json:"id"`
	State   InstanceState `json:"state"`
	Message string        `json:"message,omitempty"`
}

// InstallationUpdate changes the counts and Fronts of an installation.
type InstallationUpdate struct {
	Name       string   `json:"name"`
	Fronts     int      `json:"fronts"`
	Backs      int      `json:"backs"`
	FrontHosts []string `json:"front_hosts"`
}

// Plan is a batch of scheduling decisions applied atomically: host status
// changes, instances removed, added and updated, installations resized. Scale,
// decommission, reschedule after a host went down and agent reports are all
// plans.
type Plan struct {
	Hosts         []HostStatusChange   `json:"hosts,omitempty"`
	Remove        []string             `json:"remove,omitempty"`
	Add           []*Instance          `json:"add,omitempty"`
	Update        []InstanceUpdate     `json:"update,omitempty"`
	Installations []InstallationUpdate `json:"installations,omitempty"`
}

// Empty reports whether the plan does nothing.
func (p *Plan) Empty() bool {
	return p == nil || len(p.Hosts)+len(p.Remove)+len(p.Add)+len(p.Update)+len(p.Installations) == 0
}

// apply runs one command against a working copy; the caller swaps it in only
// when apply returned nil. ref names the object produced, for request replay.
func (s *State) apply(c *Command) (ref string, err error) {
	switch c.Type {
	case CmdSetOperatorToken:
		if s.OperatorTokenHash != "" {
			return "", errf(CodeConflict, "operator token is already set")
		}
		if c.OperatorTokenHash == "" {
			return "", errf(CodeInvalid, "operator token hash is empty")
		}
		s.OperatorTokenHash = c.OperatorTokenHash
		return "", nil

	case CmdUpsertCoreNode:
		n := c.CoreNode
		if n == nil || n.ID == "" {
			return "", errf(CodeInvalid, "core node without id")
		}
		if n.TunnelAddr.IsValid() {
			for _, h := range s.Hosts {
				if h.Status != HostDecommissioned && h.TunnelAddr == n.TunnelAddr {
					return "", errf(CodeConflict, "tunnel address %s is held by host %s", n.TunnelAddr, h.Name)
				}
			}
			for _, o := range s.CoreNodes {
				if o.ID != n.ID && o.TunnelAddr == n.TunnelAddr {
					return "", errf(CodeConflict, "tunnel address %s is held by core node %s", n.TunnelAddr, o.ID)
				}
			}
		}
		cp := *n
		cp.UpdatedAt = c.Time
		s.CoreNodes[n.ID] = &cp
		return n.ID, nil

	case CmdRemoveCoreNode:
		if _, ok := s.CoreNodes[c.Name]; !ok {
			return "", errf(CodeNotFound, "no core node %q", c.Name)
		}
		delete(s.CoreNodes, c.Name)
		return c.Name, nil

	case CmdCreateToken:
		t := c.Token
		if t == nil || t.ID == "" || t.Hash == "" {
			return "", errf(CodeInvalid, "token without id or hash")
		}
		if _, ok := s.Tokens[t.ID]; ok {
			return "", errf(CodeConflict, "token %s exists", t.ID)
		}
		cp := *t
		cp.CreatedAt = c.Time
		s.Tokens[t.ID] = &cp
		return t.ID, nil

	case CmdRevokeToken:
		t, ok := s.Tokens[c.Name]
		if !ok {
			return "", errf(CodeNotFound, "no join token %q", c.Name)
		}
		t.Revoked = true
		return t.ID, nil

	case CmdRegisterHost:
		return s.registerHost(c)

	case CmdCreateApp:
		a := c.App
		if a == nil || a.Name == "" {
			return "", errf(CodeInvalid, "app without name")
		}
		if _, ok := s.Apps[a.Name]; ok {
			return "", errf(CodeConflict, "app %q already exists", a.Name)
		}
		cp := *a
		cp.CreatedAt = c.Time
		s.Apps[a.Name] = &cp
		return a.Name, nil

	case CmdDeleteApp:
		if _, ok := s.Apps[c.Name]; !ok {
			return "", errf(CodeNotFound, "no app %q", c.Name)
		}
		if users := s.AppInUse(c.Name); len(users) > 0 {
			return "", errf(CodeConflict, "app %q is used by installations %v; delete them first", c.Name, users)
		}
		delete(s.Apps, c.Name)
		return c.Name, nil

	case CmdCreateInstallation:
		in := c.Installation
		if in == nil || in.Name == "" {
			return "", errf(CodeInvalid, "installation without name")
		}
		if _, ok := s.Installations[in.Name]; ok {
			return "", errf(CodeConflict, "installation %q already exists", in.Name)
		}
		if _, ok := s.Apps[in.App]; !ok {
			return "", errf(CodeNotFound, "no app %q", in.App)
		}
		for _, o := range s.Installations {
			if o.Domain == in.Domain {
				return "", errf(CodeConflict, "domain %q is already served by installation %q", in.Domain, o.Name)
			}
		}
		cp := *in
		cp.FrontHosts = append([]string(nil), in.FrontHosts...)
		sort.Strings(cp.FrontHosts)
		cp.CreatedAt, cp.UpdatedAt = c.Time, c.Time
		s.Installations[in.Name] = &cp
		if err := s.checkFronts(&cp); err != nil {
			return "", err
		}
		if err := s.addInstances(c.Instances, in.Name, c.Time); err != nil {
			return "", err
		}
		return in.Name, s.checkInvariants()

	case CmdDeleteInstallation:
		if _, ok := s.Installations[c.Name]; !ok {
			return "", errf(CodeNotFound, "no installation %q", c.Name)
		}
		for _, in := range s.InstancesOf(c.Name) {
			delete(s.Instances, in.ID)
		}
		delete(s.Installations, c.Name)
		return c.Name, nil

	case CmdPlan:
		if c.Plan == nil {
			return "", errf(CodeInvalid, "plan is empty")
		}
		return "", s.applyPlan(c.Plan, c.Time)
	}
	return "", errf(CodeInvalid, "unknown command type %q", c.Type)
}

func (s *State) registerHost(c *Command) (string, error) {
	h := c.Host
	if h == nil || h.ID == "" || h.Name == "" || h.PublicKey == "" {
		return "", errf(CodeInvalid, "host needs id, name and public key")
	}
	if h.Role != RoleFront && h.Role != RoleBack {
		return "", errf(CodeInvalid, "role must be front or back")
	}
	tok, ok := s.Tokens[h.TokenID]
	if !ok || tok.Revoked || (tok.ExpiresAt != nil && !c.Time.Before(*tok.ExpiresAt)) {
		return "", errf(CodeInvalid, "join token is not valid")
	}
	if o := s.HostByName(h.Name); o != nil && o.Status != HostDecommissioned {
		return "", errf(CodeConflict, "host name %q is registered with another key", h.Name)
	}
	if o := s.HostByKey(h.PublicKey); o != nil {
		return "", errf(CodeConflict, "public key is already registered as host %q", o.Name)
	}
	if _, ok := s.Hosts[h.ID]; ok {
		return "", errf(CodeConflict, "host id %s exists", h.ID)
	}
	cp := *h
	addr, err := s.assignTunnelAddr(h.TunnelAddr)
	if err != nil {
		return "", err
	}
	cp.TunnelAddr = addr
	if cp.Status == "" {
		cp.Status = HostPending
	}
	cp.RegisteredAt, cp.UpdatedAt = c.Time, c.Time
	s.Hosts[h.ID] = &cp
	return h.ID, nil
}

func (s *State) checkFronts(in *Installation) error {
	if len(in.FrontHosts) != in.Fronts {
		return errf(CodeInvalid, "installation %q wants %d fronts but %d are chosen", in.Name, in.Fronts, len(in.FrontHosts))
	}
	seen := map[string]bool{}
	for _, id := range in.FrontHosts {
		h, ok := s.Hosts[id]
		if !ok || h.Role != RoleFront || h.Status == HostDecommissioned {
			return errf(CodeInvalid, "front %q is not a usable front host", id)
		}
		if seen[id] {
			return errf(CodeInvalid, "front %q chosen twice", id)
		}
		seen[id] = true
	}
	return nil
}

func (s *State) addInstances(list []*Instance, installation string, now time.Time) error {
	for _, in := range list {
		if in == nil || in.ID == "" {
			return errf(CodeInvalid, "instance without id")
		}
		if _, ok := s.Instances[in.ID]; ok {
			return errf(CodeConflict, "instance %s exists", in.ID)
		}
		if installation != "" && in.Installation != installation {
			return errf(CodeInvalid, "instance %s belongs to %q", in.ID, in.Installation)
		}
		h, ok := s.Hosts[in.HostID]
		if !ok || h.Role != RoleBack || h.Status != HostReady {
			return errf(CodeConflict, "instance %s placed on %q, which is not a ready back", in.ID, in.HostID)
		}
		cp := *in
		if cp.State == "" {
			cp.State = InstancePending
		}
		cp.CreatedAt, cp.UpdatedAt = now, now
		s.Instances[in.ID] = &cp
	}
	return nil
}

func (s *State) applyPlan(p *Plan, now time.Time) error {
	for _, hc := range p.Hosts {
		h, ok := s.Hosts[hc.HostID]
		if !ok {
			return errf(CodeNotFound, "no host %q", hc.HostID)
		}
		switch hc.Status {
		case HostPending, HostReady, HostDown, HostDraining, HostDecommissioned:
		default:
			return errf(CodeInvalid, "unknown host status %q", hc.Status)
		}
		if h.Status == HostDecommissioned && hc.Status != HostDecommissioned {
			return errf(CodeConflict, "host %q is decommissioned", h.Name)
		}
		if hc.Status == HostDecommissioned && h.Status != HostDecommissioned && s.Addresses != nil {
			_ = s.Addresses.Release(h.TunnelAddr) // unknown to an old allocator: nothing to free
		}
		h.Status = hc.Status
		h.UpdatedAt = now
	}
	for _, id := range p.Remove {
		if _, ok := s.Instances[id]; !ok {
			return errf(CodeNotFound, "no instance %q", id)
		}
		delete(s.Instances, id)
	}
	for _, in := range p.Add {
		if _, ok := s.Installations[in.Installation]; !ok {
			return errf(CodeNotFound, "no installation %q", in.Installation)
		}
	}
	if err := s.addInstances(p.Add, "", now); err != nil {
		return err
	}
	for _, u := range p.Update {
		in, ok := s.Instances[u.ID]
		if !ok {
			return errf(CodeNotFound, "no instance %q", u.ID)
		}
		in.State, in.Message, in.UpdatedAt = u.State, u.Message, now
	}
	for _, u := range p.Installations {
		inst, ok := s.Installations[u.Name]
		if !ok {
			return errf(CodeNotFound, "no installation %q", u.Name)
		}
		inst.Fronts, inst.Backs = u.Fronts, u.Backs
		inst.FrontHosts = append([]string(nil), u.FrontHosts...)
		sort.Strings(inst.FrontHosts)
		inst.UpdatedAt = now
		if err := s.checkFronts(inst); err != nil {
			return err
		}
	}
	return s.checkInvariants()
}

// checkInvariants rejects a state where a port is used twice on a host, a
// port is out of range, a host is over its declared capacity, or an
// installation has more instances on one host than its placement allows.
func (s *State) checkInvariants() error {
	type hostPort struct {
		host string
		port int
	}
	ports := map[hostPort]string{}
	perHost := map[string]int{}
	used := map[string]Resources{} // one pass, not Used per host: O(instances), not O(hosts × instances)
	for _, in := range s.SortedInstances() {
		if in.Port < MinPort || in.Port > MaxPort {
			return errf(CodeInvalid, "instance %s: port %d outside %d-%d", in.ID, in.Port, MinPort, MaxPort)
		}
		if other, ok := ports[hostPort{in.HostID, in.Port}]; ok {
			return errf(CodeConflict, "port %d on host %s used by %s and %s", in.Port, in.HostID, other, in.ID)
		}
		ports[hostPort{in.HostID, in.Port}] = in.ID
		key := in.Installation + "\x00" + in.HostID
		perHost[key]++
		if limit := s.Installations[in.Installation].PerHostLimit(); perHost[key] > limit {
			return errf(CodeConflict, "installation %q has %d instances on host %s (at most %d allowed)", in.Installation, perHost[key], in.HostID, limit)
		}
		inst, ok := s.Installations[in.Installation]
		if !ok {
			return errf(CodeNotFound, "instance %s: no installation %q", in.ID, in.Installation)
		}
		used[in.HostID] = used[in.HostID].Add(inst.PerInstance)
	}
	for _, h := range s.SortedHosts() {
		if !h.Capacity.Fits(used[h.ID]) {
			return errf(CodeConflict, "host %s would exceed its declared capacity", h.Name)
		}
	}
	return nil
}

// Clone copies the whole state. Published states are never modified, so a
// reader may keep using a *State it obtained without holding any lock.
func (s *State) Clone() *State {
	c := *s
	if s.Addresses != nil {
		c.Addresses = s.Addresses.Clone()
	}
	c.Requests = make(map[string]RequestRecord, len(s.Requests)+1)
	for k, v := range s.Requests {
		c.Requests[k] = v
	}
	c.RequestOrder = append([]string(nil), s.RequestOrder...)
	c.Hosts = make(map[string]*Host, len(s.Hosts))
	for k, v := range s.Hosts {
		cp := *v
		c.Hosts[k] = &cp
	}
	c.CoreNodes = make(map[string]*CoreNode, len(s.CoreNodes))
	for k, v := range s.CoreNodes {
		cp := *v
		c.CoreNodes[k] = &cp
	}
	c.Apps = make(map[string]*App, len(s.Apps))
	for k, v := range s.Apps {
		cp := *v
		c.Apps[k] = &cp
	}
	c.Installations = make(map[string]*Installation, len(s.Installations))
	for k, v := range s.Installations {
		cp := *v
		cp.FrontHosts = append([]string(nil), v.FrontHosts...)
		c.Installations[k] = &cp
	}
	c.Instances = make(map[string]*Instance, len(s.Instances))
	for k, v := range s.Instances {
		cp := *v
		c.Instances[k] = &cp
	}
	c.Tokens = make(map[string]*JoinToken, len(s.Tokens))
	for k, v := range s.Tokens {
		cp := *v
		c.Tokens[k] = &cp
	}
	return &c
}

// assignTunnelAddr gives a registering host its tunnel address: the next
// free one from the replicated allocator, or want if the command names one.
// Deterministic: the allocator is part of the state every replica holds.
func (s *State) assignTunnelAddr(want netip.Addr) (netip.Addr, error) {
	used := s.UsedTunnelAddrs()
	if s.Addresses == nil {
		a, err := meshnet.NewAllocatorFrom(meshnet.DefaultPrefix, HostAddrStart())
		if err != nil {
			return netip.Addr{}, err
		}
		for u := range used {
			_ = a.Reserve(u) // fails only for an address outside the prefix, which cannot be handed out anyway
		}
		s.Addresses = a
	}
	if want.IsValid() {
		if used[want] {
			return netip.Addr{}, errf(CodeConflict, "tunnel address %s is not free", want)
		}
		if err := s.Addresses.Reserve(want); err != nil {
			return netip.Addr{}, errf(CodeConflict, "tunnel address %s: %v", want, err)
		}
		return want, nil
	}
	// Core nodes' fixed addresses are not in the allocator; skip them.
	for range len(used) + 1 {
		a, err := s.Addresses.Allocate()
		if err != nil {
			return netip.Addr{}, errf(CodeConflict, "no free tunnel address left")
		}
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, errf(CodeConflict, "no free tunnel address left")
}
