package api

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"potluck/core/fsm"
)

// HTTPS for installations: the options (PUT /v1/installations/{name}/tls),
// certificates uploaded by the operator, and the certificate store that
// Fronts reach through the agent API (core-to-core: /v1/internal/certstore,
// so a follower's agent API hands writes to the leader).

// Limits of TLS requests.
const (
	// MaxHSTSMaxAge bounds hsts_max_age (two years, as browsers' preload
	// lists expect at most).
	MaxHSTSMaxAge = 2 * 365 * 24 * time.Hour
	// MaxCertPEMBytes bounds an uploaded certificate chain or key.
	MaxCertPEMBytes = 32 << 10
)

// ManualCertKey is where the operator's certificate and key for a domain
// are kept in the certificate store (PEM, chain then key, sealed).
func ManualCertKey(domain string) string { return "manual/" + domain + "/cert.pem" }

// tlsRequest is an installation's HTTPS settings as the API takes them.
type tlsRequest struct {
	// Mode: "acme" (certificates obtained and renewed by the Fronts),
	// "manual" (cert_pem and key_pem given here), "off".
	Mode         string `json:"mode"`
	RedirectHTTP bool   `json:"redirect_http"`
	// HSTSMaxAge in seconds; 0: no Strict-Transport-Security header.
	HSTSMaxAge int64  `json:"hsts_max_age"`
	CertPEM    string `json:"cert_pem,omitempty"`
	KeyPEM     string `json:"key_pem,omitempty"`
}

// check validates the request for domain and returns the options.
func (req *tlsRequest) check(domain string, now time.Time) (*fsm.TLSOptions, error) {
	if req == nil {
		return nil, nil
	}
	o := &fsm.TLSOptions{Mode: req.Mode, RedirectHTTP: req.RedirectHTTP, HSTSMaxAge: time.Duration(req.HSTSMaxAge) * time.Second}
	if o.Mode == "off" {
		o.Mode = fsm.TLSOff
	}
	var p problems
	if err := o.Check(); err != nil {
		p.addErr(err)
	}
	if req.HSTSMaxAge < 0 || o.HSTSMaxAge > MaxHSTSMaxAge {
		p.add("hsts_max_age must be between 0 and %d seconds", int64(MaxHSTSMaxAge/time.Second))
	}
	switch {
	case o.Mode == fsm.TLSManual:
		p.addErr(checkCertificate(req.CertPEM, req.KeyPEM, domain, now))
	case req.CertPEM != "" || req.KeyPEM != "":
		p.add("cert_pem and key_pem are for tls mode manual only")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return o, nil
}

// checkCertificate refuses a certificate that would not serve domain: a
// key that does not match, a name it does not cover, or one expired.
func checkCertificate(certPEM, keyPEM, domain string, now time.Time) error {
	if certPEM == "" || keyPEM == "" {
		return errors.New("tls mode manual needs cert_pem and key_pem (PEM files)")
	}
	if len(certPEM) > MaxCertPEMBytes || len(keyPEM) > MaxCertPEMBytes {
		return fmt.Errorf("cert_pem and key_pem must be at most %d bytes each", MaxCertPEMBytes)
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return fmt.Errorf("certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	if err := leaf.VerifyHostname(domain); err != nil {
		return fmt.Errorf("certificate does not cover the installation's domain: %w", err)
	}
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("certificate expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// setInstallationTLS is PUT /v1/installations/{name}/tls.
func (s *Server) setInstallationTLS(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req tlsRequest
	if !s.decode(w, r, &req) {
		return
	}
	inst := s.installation(w, s.node.State(), name)
	if inst == nil {
		return
	}
	opts, err := req.check(inst.Domain, s.cfg.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if opts.Mode == fsm.TLSManual {
		if s.cfg.SealCert == nil {
			writeError(w, http.StatusNotImplemented, "this core node cannot seal certificates (no cluster CA)")
			return
		}
		sealed, err := s.cfg.SealCert(ManualCertKey(inst.Domain), []byte(req.CertPEM+"\n"+req.KeyPEM))
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		certID := ""
		if id := requestID(r); id != "" {
			certID = id + "/cert" // a retried upload applies once too
		}
		res, err := s.node.Decide(r.Context(), certID, func(*fsm.State, time.Time) (*fsm.Command, error) {
			return &fsm.Command{Type: fsm.CmdCertPut, Cert: &fsm.CertCommand{Key: ManualCertKey(inst.Domain), Value: sealed}}, nil
		})
		if !s.writeResult(w, res, err) {
			return
		}
	}
	res, err := s.node.Decide(r.Context(), requestID(r), func(st *fsm.State, _ time.Time) (*fsm.Command, error) {
		if cur := st.Installations[name]; cur == nil || cur.Domain != inst.Domain {
			return nil, &fsm.Error{Code: fsm.CodeConflict, Message: fmt.Sprintf("installation %q changed meanwhile; retry", name)}
		}
		return &fsm.Command{Type: fsm.CmdSetInstallationTLS, Cert: &fsm.CertCommand{Key: name, TLS: opts}}, nil
	})
	if !s.writeResult(w, res, err) {
		return
	}
	s.log.Info("installation TLS set", "installation", name, "mode", opts.Mode, "redirect_http", opts.RedirectHTTP, "hsts", opts.HSTSMaxAge)
	s.writeInstallation(w, http.StatusOK, name)
}

// CertStoreRequest is a certificate store write from a Front, relayed by
// the core node whose agent API received it (POST /v1/internal/certstore).
type CertStoreRequest struct {
	Op    string `json:"op"` // put, delete, lock, unlock, status
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"` // sealed
	// Owner holds a lock (the Front's host id); TTL is how long.
	Owner  string         `json:"owner,omitempty"`
	TTL    time.Duration  `json:"ttl,omitempty"`
	Status *fsm.TLSStatus `json:"status,omitempty"`
}

// CertStoreCommand builds the command of a certificate store write at the
// leader's time now.
func CertStoreCommand(req CertStoreRequest, now time.Time) (*fsm.Command, error) {
	c := &fsm.CertCommand{Key: req.Key}
	var t fsm.CommandType
	switch req.Op {
	case "put":
		t, c.Value = fsm.CmdCertPut, req.Value
	case "delete":
		t = fsm.CmdCertDelete
	case "lock":
		t, c.Owner, c.Expires = fsm.CmdCertLock, req.Owner, now.Add(req.TTL)
	case "unlock":
		t, c.Owner = fsm.CmdCertUnlock, req.Owner
	case "status":
		t, c.Status = fsm.CmdSetTLSStatus, req.Status
	default:
		return nil, &fsm.Error{Code: fsm.CodeInvalid, Message: fmt.Sprintf("certificate store: unknown op %q", req.Op)}
	}
	return &fsm.Command{Type: t, Cert: c}, nil
}

// internalCertStore applies a certificate store write on the leader.
func (s *Server) internalCertStore(w http.ResponseWriter, r *http.Request) {
	var req CertStoreRequest
	if !s.decode(w, r, &req) {
		return
	}
	res, err := s.node.Decide(r.Context(), "", func(_ *fsm.State, now time.Time) (*fsm.Command, error) {
		return CertStoreCommand(req, now)
	})
	if !s.writeResult(w, res, err) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
