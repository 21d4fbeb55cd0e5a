package fsm

import "time"

// CommandType names a command.
type CommandType string

// Command types.
const (
	CmdSetOperatorToken    CommandType = "set_operator_token"
	CmdRotateOperatorToken CommandType = "rotate_operator_token"
	CmdUpsertCoreNode      CommandType = "upsert_core_node"
	CmdRemoveCoreNode      CommandType = "remove_core_node"
	CmdCreateToken         CommandType = "create_token"
	CmdRevokeToken         CommandType = "revoke_token"
	CmdRegisterHost        CommandType = "register_host"
	CmdCreateApp           CommandType = "create_app"
	CmdDeleteApp           CommandType = "delete_app"
	CmdCreateInstallation  CommandType = "create_installation"
	CmdDeleteInstallation  CommandType = "delete_installation"
	// CmdRetireInstallation starts a deletion: routes go at once, the
	// instances drain, and the leader deletes the installation after.
	CmdRetireInstallation CommandType = "retire_installation"
	CmdPlan               CommandType = "plan"
	// CmdSetPlacementPolicy sets State.PlacementPolicy to Name.
	CmdSetPlacementPolicy CommandType = "set_placement_policy"
	CmdPushAppVersion     CommandType = "push_app_version"
	CmdDeployRelease      CommandType = "deploy_release"
	CmdPromoteRelease     CommandType = "promote_release"
	CmdFailRelease        CommandType = "fail_release"
	CmdSetHostPublicURL   CommandType = "set_host_public_url"
	// CmdSetHostLabels sets a host's operator-set features: Host.Lender and
	// Host.Labels (replaced whole) of Command.Host.
	CmdSetHostLabels CommandType = "set_host_labels"
	// CmdSetHostRegion sets Host.Region (of Host.ID) to Host.Region.
	CmdSetHostRegion CommandType = "set_host_region"
	// CmdSetHostAnnounced sets what an agent announces each time it
	// registers: Region, HTTPGateway and, for a Front, PublicURL of
	// Command.Host (by ID). set_host_public_url and set_host_region, which
	// did it field by field, stay for the logs that hold them.
	CmdSetHostAnnounced CommandType = "set_host_announced"
	// CmdSetAutoscale sets Installation.Autoscale's settings (Name,
	// Autoscale); CmdAutoscale is the autoscaler's operation (Name, Plan,
	// AutoscaleEvent).
	CmdSetAutoscale CommandType = "set_autoscale"
	CmdAutoscale    CommandType = "autoscale"
	// Certificate store (certs.go): Cert carries the change.
	CmdCertPut            CommandType = "cert_put"
	CmdCertDelete         CommandType = "cert_delete"
	CmdCertLock           CommandType = "cert_lock"
	CmdCertUnlock         CommandType = "cert_unlock"
	CmdSetTLSStatus       CommandType = "set_tls_status"
	CmdSetInstallationTLS CommandType = "set_installation_tls"
)

// Command is one replicated write. The leader fills Time, ids and every
// placement decision; Apply only validates and records.
type Command struct {
	Type      CommandType `json:"type"`
	RequestID string      `json:"request_id,omitempty"`
	Time      time.Time   `json:"time"`
	// Tentative: the leader planned this command on a draft that ran ahead
	// of the committed state (cluster.Node.Decide). If it is refused, its
	// request id is not recorded: the refusal may be the draft's mistake,
	// and the leader decides the request again on the committed state.
	Tentative bool `json:"tentative,omitempty"`

	OperatorTokenHash string        `json:"operator_token_hash,omitempty"`
	CoreNode          *CoreNode     `json:"core_node,omitempty"`
	Token             *JoinToken    `json:"token,omitempty"`
	Host              *Host         `json:"host,omitempty"`
	App               *App          `json:"app,omitempty"`
	Installation      *Installation `json:"installation,omitempty"`
	Instances         []*Instance   `json:"instances,omitempty"`
	Name              string        `json:"name,omitempty"` // object to delete or revoke
	Plan              *Plan         `json:"plan,omitempty"`
	// Grace: how long the replaced operator token keeps working (rotation).
	Grace time.Duration `json:"grace,omitempty"`
	// Release: the release to deploy (with Name and Instances), or the
	// version to promote or fail (with Name; Message says why it failed).
	Release *Release `json:"release,omitempty"`
	// UISession: the web UI session to create (CmdCreateUISession).
	UISession *UISession `json:"ui_session,omitempty"`
	// Autoscale and AutoscaleEvent: CmdSetAutoscale and CmdAutoscale.
	Autoscale      *Autoscale      `json:"autoscale,omitempty"`
	AutoscaleEvent *AutoscaleEvent `json:"autoscale_event,omitempty"`
	// Cert: a certificate store change or TLS settings (certs.go).
	Cert *CertCommand `json:"cert,omitempty"`
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
