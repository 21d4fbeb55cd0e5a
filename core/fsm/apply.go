package fsm

import (
	"sort"
	"time"
)

// apply runs one command against a working copy; the caller swaps it in only
// when apply returned nil. ref names the object produced, for request replay.
func (s *State) apply(c *Command) (ref string, err error) {
	switch c.Type {
	case CmdSetOperatorToken:
		return s.setOperatorToken(c)
	case CmdRotateOperatorToken:
		return s.rotateOperatorToken(c)
	case CmdUpsertCoreNode:
		return s.upsertCoreNode(c)
	case CmdRemoveCoreNode:
		return s.removeCoreNode(c)
	case CmdCreateToken:
		return s.createToken(c)
	case CmdRevokeToken:
		return s.revokeToken(c)
	case CmdCreateUISession:
		return s.createUISession(c)
	case CmdDeleteUISession:
		return s.deleteUISession(c)
	case CmdRegisterHost:
		return s.registerHost(c)
	case CmdCreateApp:
		return s.createApp(c)
	case CmdDeleteApp:
		return s.deleteApp(c)
	case CmdCreateInstallation:
		return s.createInstallation(c)
	case CmdDeleteInstallation:
		return s.deleteInstallation(c)
	case CmdRetireInstallation:
		return s.retireInstallation(c)
	case CmdPlan:
		return s.applyPlan(c)
	case CmdSetPlacementPolicy:
		return s.setPlacementPolicy(c)
	case CmdPushAppVersion:
		return s.pushAppVersion(c)
	case CmdDeployRelease:
		return s.deployRelease(c)
	case CmdPromoteRelease:
		return s.promoteRelease(c)
	case CmdFailRelease:
		return s.failRelease(c)
	case CmdSetHostPublicURL:
		return s.setHostPublicURL(c)
	case CmdSetHostLabels:
		return s.setHostLabels(c)
	case CmdSetHostRegion:
		return s.setHostRegion(c)
	case CmdSetHostAnnounced:
		return s.setHostAnnounced(c)
	case CmdSetAutoscale:
		return s.setAutoscale(c)
	case CmdAutoscale:
		return s.autoscale(c)
	case CmdCertPut:
		return s.certPut(c)
	case CmdCertDelete:
		return s.certDelete(c)
	case CmdCertLock:
		return s.certLock(c)
	case CmdCertUnlock:
		return s.certUnlock(c)
	case CmdSetTLSStatus:
		return s.setTLSStatus(c)
	case CmdSetInstallationTLS:
		return s.setInstallationTLS(c)
	}
	return "", errf(CodeInvalid, "unknown command type %q", c.Type)
}

func (s *State) setPlacementPolicy(c *Command) (string, error) {
	switch c.Name {
	case "", PolicySpread, PolicyPack:
	default:
		return "", errf(CodeInvalid, "placement policy %q: use spread or pack", c.Name)
	}
	s.PlacementPolicy = c.Name
	return c.Name, nil
}

func (s *State) setOperatorToken(c *Command) (string, error) {
	if s.OperatorTokenHash != "" {
		return "", errf(CodeConflict, "operator token is already set")
	}
	if c.OperatorTokenHash == "" {
		return "", errf(CodeInvalid, "operator token hash is empty")
	}
	s.OperatorTokenHash = c.OperatorTokenHash
	return "", nil
}

// rotateOperatorToken installs a new operator token; the old one keeps
// working for the command's grace.
func (s *State) rotateOperatorToken(c *Command) (string, error) {
	if c.OperatorTokenHash == "" {
		return "", errf(CodeInvalid, "operator token hash is empty")
	}
	if c.Grace < 0 {
		return "", errf(CodeInvalid, "grace must not be negative")
	}
	if c.OperatorTokenHash == s.OperatorTokenHash {
		return "", errf(CodeConflict, "the new operator token is the current one")
	}
	until := c.Time.Add(c.Grace)
	s.PreviousOperatorTokenHash, s.PreviousOperatorUntil = s.OperatorTokenHash, &until
	if c.Grace == 0 {
		s.PreviousOperatorTokenHash, s.PreviousOperatorUntil = "", nil
	}
	s.OperatorTokenHash = c.OperatorTokenHash
	return "", nil
}

func (s *State) upsertCoreNode(c *Command) (string, error) {
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
}

func (s *State) removeCoreNode(c *Command) (string, error) {
	if _, ok := s.CoreNodes[c.Name]; !ok {
		return "", errf(CodeNotFound, "no core node %q", c.Name)
	}
	delete(s.CoreNodes, c.Name)
	return c.Name, nil
}

func (s *State) createToken(c *Command) (string, error) {
	t := c.Token
	if t == nil || t.ID == "" || t.Hash == "" {
		return "", errf(CodeInvalid, "token without id or hash")
	}
	switch t.Scope {
	case "", ScopeJoin, ScopeReadOnly:
		if len(t.Apps)+len(t.Installations) > 0 {
			return "", errf(CodeInvalid, "only app-owner tokens name apps or installations")
		}
	case ScopeAppOwner:
		if len(t.Apps)+len(t.Installations) == 0 {
			return "", errf(CodeInvalid, "an app-owner token names at least one app or installation")
		}
	default:
		return "", errf(CodeInvalid, "unknown token scope %q", t.Scope)
	}
	if _, ok := s.Tokens[t.ID]; ok {
		return "", errf(CodeConflict, "token %s exists", t.ID)
	}
	cp := *t
	cp.CreatedAt = c.Time
	s.Tokens[t.ID] = &cp
	return t.ID, nil
}

func (s *State) revokeToken(c *Command) (string, error) {
	t, ok := s.Tokens[c.Name]
	if !ok {
		return "", errf(CodeNotFound, "no join token %q", c.Name)
	}
	t.Revoked = true
	return t.ID, nil
}

func (s *State) registerHost(c *Command) (string, error) {
	h := c.Host
	if h == nil || h.ID == "" || h.Name == "" || h.PublicKey == "" {
		return "", errf(CodeInvalid, "host needs id, name and public key")
	}
	if h.Role != RoleFront && h.Role != RoleBack {
		return "", errf(CodeInvalid, "role must be front or back")
	}
	if h.TokenID != OperatorTokenID {
		tok, ok := s.Tokens[h.TokenID]
		if !ok || !tok.Usable(c.Time) || tok.ScopeOrJoin() != ScopeJoin {
			return "", errf(CodeInvalid, "join token is not valid")
		}
	}
	if o := s.CoreNodeByKey(h.PublicKey); o != nil {
		return "", errf(CodeConflict, "public key is core node %s's", o.ID)
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
	s.putHost(&cp)
	return h.ID, nil
}

func (s *State) createApp(c *Command) (string, error) {
	a := c.App
	if a == nil || a.Name == "" {
		return "", errf(CodeInvalid, "app without name")
	}
	if _, ok := s.Apps[a.Name]; ok {
		return "", errf(CodeConflict, "app %q already exists", a.Name)
	}
	cp := *a
	cp.CreatedAt = c.Time
	cp.Version = 1
	v, _ := cp.At(0)
	cp.Versions = []AppVersion{v}
	s.Apps[a.Name] = &cp
	return a.Name, nil
}

func (s *State) deleteApp(c *Command) (string, error) {
	if _, ok := s.Apps[c.Name]; !ok {
		return "", errf(CodeNotFound, "no app %q", c.Name)
	}
	if users := s.AppInUse(c.Name); len(users) > 0 {
		return "", errf(CodeConflict, "app %q is used by installations %v; delete them first", c.Name, users)
	}
	delete(s.Apps, c.Name)
	return c.Name, nil
}

func (s *State) createInstallation(c *Command) (string, error) {
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
	if o := s.InstallationByDomain(in.Domain); o != nil {
		return "", errf(CodeConflict, "domain %q is already served by installation %q", in.Domain, o.Name)
	}
	cp := *in
	cp.FrontHosts = append([]string(nil), in.FrontHosts...)
	sort.Strings(cp.FrontHosts)
	cp.CreatedAt, cp.UpdatedAt = c.Time, c.Time
	cp.Release = 1
	if cp.AppVersion == 0 {
		cp.AppVersion = s.Apps[in.App].CurrentVersion()
	}
	r1, _ := cp.ReleaseByVersion(1)
	cp.Releases = []*Release{r1}
	s.putInstallation(&cp)
	s.frontsChange(cp.FrontHosts, 1)
	if err := s.checkFronts(&cp); err != nil {
		return "", err
	}
	if err := s.addInstances(c.Instances, in.Name, c.Time); err != nil {
		return "", err
	}
	return in.Name, s.checkTouched(c.Instances)
}

func (s *State) deleteInstallation(c *Command) (string, error) {
	if _, ok := s.Installations[c.Name]; !ok {
		return "", errf(CodeNotFound, "no installation %q", c.Name)
	}
	for _, in := range s.InstancesOf(c.Name) {
		s.dropInstance(in.ID)
	}
	s.dropDomainCerts(s.Installations[c.Name].Domain)
	s.frontsChange(s.Installations[c.Name].FrontHosts, -1)
	delete(s.installationsForWrite(), c.Name)
	return c.Name, nil
}

// retireInstallation marks an installation deleting and drains its
// instances: Fronts stop routing to them at once, Backs keep them running
// for the drain so requests in flight finish, then the leader deletes it
// (reconcile). Retiring a deleting installation again changes nothing.
func (s *State) retireInstallation(c *Command) (string, error) {
	inst, ok := s.Installations[c.Name]
	if !ok {
		return "", errf(CodeNotFound, "no installation %q", c.Name)
	}
	if inst.Deleting {
		return c.Name, nil
	}
	cp := *inst
	cp.Deleting, cp.UpdatedAt = true, c.Time
	s.putInstallation(&cp)
	for _, in := range s.InstancesOf(c.Name) {
		if in.State == InstanceDraining {
			continue
		}
		d := s.editInstance(in.ID)
		d.State, d.Message, d.UpdatedAt = InstanceDraining, "installation deleted", c.Time
	}
	return c.Name, nil
}

// refuseIfDeleting is the error of a change to an installation being deleted.
func refuseIfDeleting(inst *Installation) error {
	if inst != nil && inst.Deleting {
		return errf(CodeConflict, "installation %q is being deleted", inst.Name)
	}
	return nil
}

// applyPlan applies a batch of scheduling decisions in a fixed order: host
// statuses, removals, additions, instance updates, installation resizes; then
// the invariants over the result.
func (s *State) applyPlan(c *Command) (string, error) {
	p := c.Plan
	if p == nil {
		return "", errf(CodeInvalid, "plan is empty")
	}
	if err := s.setHostStatuses(p.Hosts, c.Time); err != nil {
		return "", err
	}
	for _, id := range p.Remove {
		if _, ok := s.Instances[id]; !ok {
			return "", errf(CodeNotFound, "no instance %q", id)
		}
		s.dropInstance(id)
	}
	for _, in := range p.Add {
		if _, ok := s.Installations[in.Installation]; !ok {
			return "", errf(CodeNotFound, "no installation %q", in.Installation)
		}
	}
	if err := s.addInstances(p.Add, "", c.Time); err != nil {
		return "", err
	}
	for _, u := range p.Update {
		in := s.editInstance(u.ID)
		if in == nil {
			return "", errf(CodeNotFound, "no instance %q", u.ID)
		}
		in.State, in.Message, in.UpdatedAt = u.State, u.Message, c.Time
	}
	if err := s.resizeInstallations(p.Installations, c.Time); err != nil {
		return "", err
	}
	return "", s.checkTouched(p.Add)
}

func (s *State) setHostStatuses(changes []HostStatusChange, now time.Time) error {
	for _, hc := range changes {
		h := s.editHost(hc.HostID)
		if h == nil {
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
		if hc.Status == HostDecommissioned && h.Status != HostDecommissioned {
			s.releaseTunnelAddr(h.TunnelAddr)
		}
		h.Status = hc.Status
		h.UpdatedAt = now
	}
	return nil
}

func (s *State) resizeInstallations(updates []InstallationUpdate, now time.Time) error {
	for _, u := range updates {
		inst := s.Installations[u.Name]
		if inst == nil {
			return errf(CodeNotFound, "no installation %q", u.Name)
		}
		if err := refuseIfDeleting(inst); err != nil && inst.Backs != u.Backs {
			return err
		}
		inst = s.editInstallation(u.Name)
		inst.Fronts, inst.Backs = u.Fronts, u.Backs
		s.frontsChange(inst.FrontHosts, -1)
		inst.FrontHosts = append([]string(nil), u.FrontHosts...)
		sort.Strings(inst.FrontHosts)
		s.frontsChange(inst.FrontHosts, 1)
		inst.UpdatedAt = now
		if err := s.checkFronts(inst); err != nil {
			return err
		}
	}
	return nil
}

// addInstances places new instances; installation, when set, is the one they
// must all belong to. Only a ready Back takes new work.
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
		if inst := s.Installations[in.Installation]; cp.Release == 0 && inst != nil && inst.Release != 0 {
			cp.Release = inst.Release // scale and repair place the live release
		}
		cp.CreatedAt, cp.UpdatedAt = now, now
		s.putInstance(&cp)
	}
	return nil
}

// setHostPublicURL records where a Front now serves the public (its agent
// registers again at every start, with its current --public-url).
func (s *State) setHostPublicURL(c *Command) (string, error) {
	h, err := s.editCommandHost(c)
	if err != nil {
		return "", err
	}
	if h.Role != RoleFront {
		return "", errf(CodeInvalid, "host %q is not a front", h.Name)
	}
	h.PublicURL, h.UpdatedAt = c.Host.PublicURL, c.Time
	return h.ID, nil
}

// setHostRegion records where a host is (its agent registers again at
// every start, with its current --region).
func (s *State) setHostRegion(c *Command) (string, error) {
	h, err := s.editCommandHost(c)
	if err != nil {
		return "", err
	}
	h.Region, h.UpdatedAt = c.Host.Region, c.Time
	return h.ID, nil
}

// setHostAnnounced records what a host's agent said when it registered
// again (at every start): its region, whether it runs the HTTP gateway,
// and a Front's public URL.
func (s *State) setHostAnnounced(c *Command) (string, error) {
	h, err := s.editCommandHost(c)
	if err != nil {
		return "", err
	}
	h.Region, h.HTTPGateway, h.UpdatedAt = c.Host.Region, c.Host.HTTPGateway, c.Time
	if h.Role == RoleFront {
		h.PublicURL = c.Host.PublicURL
	}
	return h.ID, nil
}

// editCommandHost is the host c names (c.Host.ID), copied for editing.
func (s *State) editCommandHost(c *Command) (*Host, error) {
	if c.Host == nil {
		return nil, errf(CodeInvalid, "no host given")
	}
	h := s.editHost(c.Host.ID)
	if h == nil {
		return nil, errf(CodeNotFound, "no host %q", c.Host.ID)
	}
	return h, nil
}
