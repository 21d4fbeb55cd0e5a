package engine

import (
	"strconv"

	"github.com/moby/moby/api/types/container"
)

// Hardening every container gets. Apps are strangers' code on a lender's
// machine: they keep what a web server needs and nothing more.
const (
	// DefaultPidsLimit bounds a container's processes and threads (a Go or
	// Java server runs a few dozen; a fork bomb is stopped here).
	DefaultPidsLimit = 512
	// LogMaxSize and LogMaxFiles rotate the json-file log: at most 30 MB of
	// logs per container on the lender's disk.
	LogMaxSize  = "10m"
	LogMaxFiles = 3
	// TmpfsOptions is the writable /tmp of a read-only container.
	TmpfsOptions = "rw,nosuid,nodev,size=64m"
)

// Capabilities kept after dropping all. A web server starting as root binds
// a port below 1024 (NET_BIND_SERVICE), then switches to its own user
// (SETUID, SETGID) after preparing its files (CHOWN, FOWNER, DAC_OVERRIDE),
// and a master process signals its workers (KILL). Dropped from Docker's
// default set: NET_RAW (raw sockets: spoofing, ARP games on the bridge),
// MKNOD, SYS_CHROOT, SETFCAP, SETPCAP, FSETID and AUDIT_WRITE.
var Capabilities = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID"}

// hardened is the host config of every instance before its ports, network
// and resources are filled in.
func hardened(s Spec) *container.HostConfig {
	pids := s.PidsLimit
	if pids == 0 {
		pids = DefaultPidsLimit
	}
	hc := &container.HostConfig{
		CapDrop:     []string{"ALL"},
		CapAdd:      append([]string(nil), Capabilities...),
		SecurityOpt: []string{"no-new-privileges"},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": LogMaxSize, "max-file": strconv.Itoa(LogMaxFiles),
		}},
		ReadonlyRootfs: s.ReadOnlyRoot,
	}
	hc.Resources.PidsLimit = &pids
	if s.ReadOnlyRoot {
		hc.Tmpfs = map[string]string{"/tmp": TmpfsOptions}
	}
	return hc
}
