package fsm

import (
	"sort"
	"strings"
	"time"
)

// The certificate store: what Fronts' ACME library (certmagic) keeps —
// certificates, their keys, ACME accounts, challenge tokens — replicated so
// every Front of an installation serves the same certificate and any Front
// can answer a challenge. Values are sealed by the core before they enter a
// command (see core/certseal), so the raft log, snapshots and backups never
// hold a private key in the clear. Locks serialise obtaining a certificate
// across Fronts.

// Limits of the certificate store.
const (
	// MaxCertKeyLength bounds a storage key (certmagic's are a few
	// path segments).
	MaxCertKeyLength = 512
	// MaxCertValueBytes bounds one sealed value (a certificate chain with
	// its metadata is a few kB).
	MaxCertValueBytes = 64 << 10
	// MaxCertEntries bounds the store as a whole.
	MaxCertEntries = 20000
	// MaxCertLockTTL bounds how long a lock holds without being renewed.
	MaxCertLockTTL = 10 * time.Minute
)

// TLS modes of an installation.
const (
	TLSOff    = ""       // plain HTTP only
	TLSACME   = "acme"   // certificate obtained and renewed by the Fronts (ACME)
	TLSManual = "manual" // certificate and key supplied by the operator
)

// TLSOptions is how an installation's domain is served over HTTPS. It is
// replaced whole, never modified in place.
type TLSOptions struct {
	Mode string `json:"mode"`
	// RedirectHTTP answers plain HTTP requests with 308 to https:// (ACME
	// HTTP-01 challenges excepted).
	RedirectHTTP bool `json:"redirect_http,omitempty"`
	// HSTSMaxAge > 0 sends Strict-Transport-Security with this max-age on
	// HTTPS answers.
	HSTSMaxAge time.Duration `json:"hsts_max_age,omitempty"`
}

// CertEntry is one value of the certificate store, sealed.
type CertEntry struct {
	Value    []byte    `json:"value"`
	Modified time.Time `json:"modified"`
}

// CertLock is a lock of the certificate store, held by a host until it
// unlocks or Expires passes.
type CertLock struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// TLS certificate states a Front reports for a domain.
const (
	TLSStateObtaining = "obtaining"
	TLSStateValid     = "valid"
	TLSStateError     = "error"
)

// TLSStatus is the last word of a Front on a domain's certificate, shown
// with the installation: a domain the operator does not control shows its
// error here instead of retrying unseen.
type TLSStatus struct {
	State    string     `json:"state"`
	Error    string     `json:"error,omitempty"`
	Issuer   string     `json:"issuer,omitempty"`
	NotAfter *time.Time `json:"not_after,omitempty"`
	// NextAttempt is when a failed domain will be tried again.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	Host        string     `json:"host"` // the Front that reported
	Updated     time.Time  `json:"updated"`
}

// CertCommand carries a certificate store change.
type CertCommand struct {
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"`
	// Lock owner and expiry (CmdCertLock, CmdCertUnlock).
	Owner   string    `json:"owner,omitempty"`
	Expires time.Time `json:"expires,omitempty"`
	// Status for Key as a domain (CmdSetTLSStatus).
	Status *TLSStatus `json:"status,omitempty"`
	// TLS for the installation named Key (CmdSetInstallationTLS).
	TLS *TLSOptions `json:"tls,omitempty"`
}

func validCertKey(k string) bool {
	return k != "" && len(k) <= MaxCertKeyLength && !strings.HasPrefix(k, "/") && !strings.Contains(k, "..")
}

func (s *State) certPut(c *Command) (string, error) {
	cc := c.Cert
	if cc == nil || !validCertKey(cc.Key) {
		return "", errf(CodeInvalid, "certificate store: bad key")
	}
	if len(cc.Value) > MaxCertValueBytes {
		return "", errf(CodeInvalid, "certificate store: value of %d bytes, at most %d", len(cc.Value), MaxCertValueBytes)
	}
	if _, ok := s.Certs[cc.Key]; !ok && len(s.Certs) >= MaxCertEntries {
		return "", errf(CodeConflict, "certificate store is full (%d entries)", MaxCertEntries)
	}
	certs := make(map[string]*CertEntry, len(s.Certs)+1)
	for k, v := range s.Certs {
		certs[k] = v
	}
	certs[cc.Key] = &CertEntry{Value: append([]byte(nil), cc.Value...), Modified: c.Time}
	s.Certs = certs
	return cc.Key, nil
}

// certDelete removes a key and everything under it (key + "/"), as
// certmagic's Delete does for a directory.
func (s *State) certDelete(c *Command) (string, error) {
	if c.Cert == nil || !validCertKey(c.Cert.Key) {
		return "", errf(CodeInvalid, "certificate store: bad key")
	}
	k := c.Cert.Key
	certs := make(map[string]*CertEntry, len(s.Certs))
	found := false
	for key, v := range s.Certs {
		if key == k || strings.HasPrefix(key, k+"/") {
			found = true
			continue
		}
		certs[key] = v
	}
	if !found {
		return "", errf(CodeNotFound, "certificate store: no key %q", k)
	}
	s.Certs = certs
	return k, nil
}

// certLock takes a lock for its owner when it is free, expired or already
// the owner's (which extends it).
func (s *State) certLock(c *Command) (string, error) {
	cc := c.Cert
	if cc == nil || !validCertKey(cc.Key) || cc.Owner == "" {
		return "", errf(CodeInvalid, "certificate lock: bad name or owner")
	}
	if !cc.Expires.After(c.Time) || cc.Expires.Sub(c.Time) > MaxCertLockTTL {
		return "", errf(CodeInvalid, "certificate lock: expiry must be within %s", MaxCertLockTTL)
	}
	if l := s.CertLocks[cc.Key]; l != nil && l.Owner != cc.Owner && l.Expires.After(c.Time) {
		return "", errf(CodeConflict, "certificate lock %q is held by %s until %s", cc.Key, l.Owner, l.Expires.UTC().Format(time.RFC3339))
	}
	locks := make(map[string]*CertLock, len(s.CertLocks)+1)
	for k, v := range s.CertLocks {
		if v.Expires.After(c.Time) { // expired locks go with the next change
			locks[k] = v
		}
	}
	locks[cc.Key] = &CertLock{Owner: cc.Owner, Expires: cc.Expires}
	s.CertLocks = locks
	return cc.Key, nil
}

func (s *State) certUnlock(c *Command) (string, error) {
	cc := c.Cert
	if cc == nil || cc.Key == "" {
		return "", errf(CodeInvalid, "certificate unlock: no name")
	}
	l := s.CertLocks[cc.Key]
	if l == nil || l.Owner != cc.Owner {
		return "", errf(CodeNotFound, "certificate lock %q is not held by %s", cc.Key, cc.Owner)
	}
	s.CertLocks = without(s.CertLocks, cc.Key)
	return cc.Key, nil
}

// setTLSStatus records a Front's report on a domain served by an
// installation.
func (s *State) setTLSStatus(c *Command) (string, error) {
	cc := c.Cert
	served := make(map[string]bool, len(s.Installations))
	for _, in := range s.Installations {
		served[in.Domain] = true
	}
	if cc == nil || cc.Status == nil || !served[cc.Key] {
		return "", errf(CodeNotFound, "no installation serves this domain")
	}
	st := make(map[string]*TLSStatus, len(s.TLSStatus)+1)
	for k, v := range s.TLSStatus {
		if served[k] { // forget domains no longer served
			st[k] = v
		}
	}
	cp := *cc.Status
	cp.Updated = c.Time
	st[cc.Key] = &cp
	s.TLSStatus = st
	return cc.Key, nil
}

// setInstallationTLS replaces an installation's TLS options.
func (s *State) setInstallationTLS(c *Command) (string, error) {
	cc := c.Cert
	if cc == nil {
		return "", errf(CodeInvalid, "no TLS options")
	}
	inst, ok := s.Installations[cc.Key]
	if !ok {
		return "", errf(CodeNotFound, "no installation %q", cc.Key)
	}
	if err := cc.TLS.Check(); err != nil {
		return "", err
	}
	cp := *inst
	cp.TLS, cp.UpdatedAt = cc.TLS, c.Time
	if cp.TLS != nil && cp.TLS.Mode == TLSOff && !cp.TLS.RedirectHTTP && cp.TLS.HSTSMaxAge == 0 {
		cp.TLS = nil
	}
	// A mode change drops the keys the new mode does not use, and the old
	// mode's status: a private key does not outlive the HTTPS it served.
	if from, to := inst.TLS.mode(), cp.TLS.mode(); from != to {
		s.dropDomainKeys(inst.Domain, func(k string) bool { return !keyUsedBy(k, to) })
	}
	s.putInstallation(&cp)
	return cc.Key, nil
}

// mode is the options' mode (nil: off).
func (o *TLSOptions) mode() string {
	if o == nil {
		return TLSOff
	}
	return o.Mode
}

// Check validates TLS options (nil: off).
func (o *TLSOptions) Check() error {
	if o == nil {
		return nil
	}
	switch o.Mode {
	case TLSOff, TLSACME, TLSManual:
	default:
		return errf(CodeInvalid, "tls mode %q: use acme, manual or off", o.Mode)
	}
	if o.Mode == TLSOff && (o.RedirectHTTP || o.HSTSMaxAge != 0) {
		return errf(CodeInvalid, "redirect to HTTPS and HSTS need HTTPS (tls mode acme or manual)")
	}
	if o.HSTSMaxAge < 0 {
		return errf(CodeInvalid, "hsts max-age must not be negative")
	}
	return nil
}

// CertKeyDomain is the domain a store key belongs to, "" for keys shared
// by every Front (ACME accounts, bookkeeping). certmagic keeps a domain's
// certificate under certificates/<issuer>/<domain>/, its challenge under
// .../challenge_tokens/<domain>.json and its OCSP staple at
// ocsp/<domain>-<hash>; uploaded certificates are under manual/<domain>/,
// a Front's last failed order at failures/<domain>.json.
func CertKeyDomain(key string) string {
	parts := strings.Split(key, "/")
	switch {
	case len(parts) >= 3 && parts[0] == "certificates":
		return parts[2]
	case len(parts) >= 2 && parts[0] == "manual":
		return parts[1]
	case len(parts) == 2 && parts[0] == "failures":
		return strings.TrimSuffix(parts[1], ".json")
	case len(parts) == 2 && parts[0] == "ocsp" && strings.LastIndexByte(parts[1], '-') > 0:
		return parts[1][:strings.LastIndexByte(parts[1], '-')]
	case len(parts) >= 2 && parts[len(parts)-2] == "challenge_tokens":
		return strings.TrimSuffix(parts[len(parts)-1], ".json")
	}
	return ""
}

// dropDomainCerts removes the store's keys of a domain and its status: an
// installation's private key does not outlive it (a new installation of
// the domain orders or uploads a new certificate).
func (s *State) dropDomainCerts(domain string) {
	s.dropDomainKeys(domain, func(string) bool { return true })
}

// keyUsedBy reports whether TLS mode mode uses a store key of the
// installation's domain: manual its uploaded certificate, acme the rest
// (certmagic's certificate and key, challenge tokens, failure records),
// off none; OCSP staples go with any change.
func keyUsedBy(key, mode string) bool {
	switch {
	case strings.HasPrefix(key, "ocsp/"):
		return false // a staple is fetched again for the new mode's certificate
	case strings.HasPrefix(key, "manual/"):
		return mode == TLSManual
	}
	return mode == TLSACME
}

// dropDomainKeys removes the domain's store keys that drop selects, and
// the domain's status.
func (s *State) dropDomainKeys(domain string, drop func(key string) bool) {
	if domain == "" {
		return
	}
	var gone []string
	for k := range s.Certs {
		if CertKeyDomain(k) == domain && drop(k) {
			gone = append(gone, k)
		}
	}
	if len(gone) > 0 {
		certs := make(map[string]*CertEntry, len(s.Certs))
		for k, v := range s.Certs {
			certs[k] = v
		}
		for _, k := range gone {
			delete(certs, k)
		}
		s.Certs = certs
	}
	if _, ok := s.TLSStatus[domain]; ok {
		s.TLSStatus = without(s.TLSStatus, domain)
	}
}

// InstallationByDomain finds the installation serving a domain. At most
// one does (createInstallation refuses a second), so the walk needs no
// order.
func (s *State) InstallationByDomain(domain string) *Installation {
	for _, in := range s.Installations {
		if in.Domain == domain {
			return in
		}
	}
	return nil
}

// CertKeys lists the store's keys under prefix, sorted; recursive lists
// every key below it, otherwise the direct children (a child with keys
// below it is listed once, as a directory).
func (s *State) CertKeys(prefix string, recursive bool) []string {
	p := strings.TrimSuffix(prefix, "/")
	seen := map[string]bool{}
	var out []string
	for k := range s.Certs {
		rest := k
		if p != "" {
			if !strings.HasPrefix(k, p+"/") {
				continue
			}
			rest = k[len(p)+1:]
		}
		name := k
		if !recursive {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				name = k[:len(k)-len(rest)+i]
			}
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
