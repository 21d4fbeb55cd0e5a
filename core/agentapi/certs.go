package agentapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"potluck/agentproto"
	"potluck/core/api"
	"potluck/core/fsm"
	"potluck/internal/jsonhttp"
)

// CertStore gives the agent API the certificate store: values are sealed
// before they are written and opened when a Front reads them; writes reach
// the leader (through this node's public API on a follower) and are visible
// in this node's state when Write returns.
type CertStore struct {
	Seal  func(key string, value []byte) ([]byte, error)
	Open  func(key string, sealed []byte) ([]byte, error)
	Write func(ctx context.Context, req api.CertStoreRequest) error
}

// DefaultCertLockTTL is how long a Front's lock holds unless renewed.
const DefaultCertLockTTL = 2 * time.Minute

func (h *Handler) routeCerts() {
	h.mux.HandleFunc("GET "+agentproto.PathCerts+"{key...}", h.front(h.getCert))
	h.mux.HandleFunc("PUT "+agentproto.PathCerts+"{key...}", h.front(h.putCert))
	h.mux.HandleFunc("DELETE "+agentproto.PathCerts+"{key...}", h.front(h.deleteCert))
	h.mux.HandleFunc("POST "+agentproto.PathCertLocks+"{name...}", h.front(h.lockCert))
	h.mux.HandleFunc("DELETE "+agentproto.PathCertLocks+"{name...}", h.front(h.unlockCert))
	h.mux.HandleFunc("POST "+agentproto.PathTLSStatus, h.front(h.tlsStatus))
}

// front admits Fronts only, and only when this node has a store.
func (h *Handler) front(next hostHandler) http.HandlerFunc {
	return h.host(func(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
		if host.Role != fsm.RoleFront {
			jsonhttp.WriteError(w, http.StatusForbidden, "the certificate store is for Fronts")
			return
		}
		if h.cfg.Certs == nil {
			jsonhttp.WriteError(w, http.StatusNotImplemented, "this core node has no certificate store (no cluster CA)")
			return
		}
		next(w, r, host)
	})
}

// servesDomain reports whether host is a Front of the installation of
// domain: a Front never reads another installation's private key.
func servesDomain(st *fsm.State, host *fsm.Host, domain string) bool {
	in := st.InstallationByDomain(domain)
	return in != nil && !in.Deleting && slices.Contains(in.FrontHosts, host.ID)
}

// allowedKey checks a store key and the caller's right to it.
func (h *Handler) allowedKey(w http.ResponseWriter, host *fsm.Host, key string) bool {
	if len(key) > fsm.MaxCertKeyLength || strings.Contains(key, "..") || strings.HasPrefix(key, "/") {
		jsonhttp.WriteError(w, http.StatusBadRequest, "bad certificate store key")
		return false
	}
	if d := fsm.CertKeyDomain(key); d != "" && !servesDomain(h.cfg.State.State(), host, d) {
		jsonhttp.WriteError(w, http.StatusForbidden, fmt.Sprintf("this Front serves no installation of %q", d))
		return false
	}
	return true
}

func (h *Handler) getCert(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	st := h.cfg.State.State()
	q := r.URL.Query()
	if r.PathValue("key") == "" && q.Has("list") {
		prefix := strings.Trim(q.Get("list"), "/")
		if !h.allowedKey(w, host, prefix+"/x") {
			return
		}
		keys := st.CertKeys(prefix, q.Get("recursive") == "true")
		out := agentproto.CertList{Keys: []string{}}
		for _, k := range keys {
			if d := fsm.CertKeyDomain(k); d == "" || servesDomain(st, host, d) {
				out.Keys = append(out.Keys, k)
			}
		}
		jsonhttp.WriteJSON(w, http.StatusOK, out)
		return
	}
	key := r.PathValue("key")
	if !h.allowedKey(w, host, key) {
		return
	}
	e := st.Certs[key]
	if q.Get("stat") == "true" {
		if e != nil {
			jsonhttp.WriteJSON(w, http.StatusOK, agentproto.CertStat{Key: key, Size: int64(len(e.Value)), Modified: e.Modified, Terminal: true})
			return
		}
		if len(st.CertKeys(key, false)) > 0 {
			jsonhttp.WriteJSON(w, http.StatusOK, agentproto.CertStat{Key: key})
			return
		}
	}
	if e == nil {
		jsonhttp.WriteError(w, http.StatusNotFound, "no such key in the certificate store: "+key)
		return
	}
	v, err := h.cfg.Certs.Open(key, e.Value)
	if err != nil {
		h.cfg.Logger.Error("certificate store value does not open", "key", key, "err", err)
		jsonhttp.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(v)
}

func (h *Handler) putCert(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	key := r.PathValue("key")
	if !h.allowedKey(w, host, key) {
		return
	}
	v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, agentproto.MaxCertValue))
	if err != nil {
		jsonhttp.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("value larger than %d bytes or unreadable: %v", agentproto.MaxCertValue, err))
		return
	}
	sealed, err := h.cfg.Certs.Seal(key, v)
	if err != nil {
		jsonhttp.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	h.certWrite(w, r, api.CertStoreRequest{Op: "put", Key: key, Value: sealed})
}

func (h *Handler) deleteCert(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	key := r.PathValue("key")
	if !h.allowedKey(w, host, key) {
		return
	}
	h.certWrite(w, r, api.CertStoreRequest{Op: "delete", Key: key})
}

func (h *Handler) lockCert(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	name := r.PathValue("name")
	ttl := DefaultCertLockTTL
	if s := r.URL.Query().Get("ttl"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > fsm.MaxCertLockTTL {
			jsonhttp.WriteError(w, http.StatusBadRequest, fmt.Sprintf("ttl must be a duration up to %s", fsm.MaxCertLockTTL))
			return
		}
		ttl = d
	}
	if name == "" || len(name) > fsm.MaxCertKeyLength {
		jsonhttp.WriteError(w, http.StatusBadRequest, "bad lock name")
		return
	}
	h.certWrite(w, r, api.CertStoreRequest{Op: "lock", Key: name, Owner: host.ID, TTL: ttl})
}

func (h *Handler) unlockCert(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	h.certWrite(w, r, api.CertStoreRequest{Op: "unlock", Key: r.PathValue("name"), Owner: host.ID})
}

// maxTLSReportBytes bounds a TLS report's body.
const maxTLSReportBytes = 8 << 10

func (h *Handler) tlsStatus(w http.ResponseWriter, r *http.Request, host *fsm.Host) {
	var rep agentproto.TLSReport
	if err := jsonhttp.Decode(w, r, &rep, maxTLSReportBytes); err != nil {
		jsonhttp.WriteError(w, jsonhttp.StatusOf(err), "tls status: "+jsonhttp.MessageOf(err))
		return
	}
	if !servesDomain(h.cfg.State.State(), host, rep.Domain) {
		jsonhttp.WriteError(w, http.StatusForbidden, fmt.Sprintf("this Front serves no installation of %q", rep.Domain))
		return
	}
	switch rep.State {
	case fsm.TLSStateObtaining, fsm.TLSStateValid, fsm.TLSStateError:
	default:
		jsonhttp.WriteError(w, http.StatusBadRequest, "state must be obtaining, valid or error")
		return
	}
	if len(rep.Error) > agentproto.MaxReportMessage {
		rep.Error = rep.Error[:agentproto.MaxReportMessage]
	}
	h.certWrite(w, r, api.CertStoreRequest{Op: "status", Key: rep.Domain, Status: &fsm.TLSStatus{
		State: rep.State, Error: rep.Error, Issuer: rep.Issuer, NotAfter: rep.NotAfter, NextAttempt: rep.NextAttempt, Host: host.ID,
	}})
}

func (h *Handler) certWrite(w http.ResponseWriter, r *http.Request, req api.CertStoreRequest) {
	if err := h.cfg.Certs.Write(r.Context(), req); err != nil {
		jsonhttp.WriteError(w, deliveryStatus(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// routeTLS is an installation's HTTPS settings as a Front gets them.
func routeTLS(st *fsm.State, inst *fsm.Installation) *agentproto.RouteTLS {
	if inst.TLS == nil || inst.TLS.Mode == fsm.TLSOff {
		return nil
	}
	t := &agentproto.RouteTLS{Mode: inst.TLS.Mode, RedirectHTTP: inst.TLS.RedirectHTTP, HSTSMaxAge: inst.TLS.HSTSMaxAge}
	if t.Mode == fsm.TLSManual {
		t.ManualKey = api.ManualCertKey(inst.Domain)
		if e := st.Certs[t.ManualKey]; e != nil {
			t.ManualModified = e.Modified
		}
	}
	return t
}
