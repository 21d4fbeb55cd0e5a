package front

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/valyala/fasthttp"

	"potluck/agentproto"
	"potluck/lb"
)

// HTTPSConfig turns on HTTPS for the installations that ask for it.
// Certificates come from the core's certificate store: obtained with ACME
// by whichever Front gets there first (the store's lock), or uploaded by
// the operator; every Front of an installation serves the same one.
type HTTPSConfig struct {
	// ACMEDirectory is the ACME CA's directory URL; empty: Let's Encrypt.
	// Every Front of a cluster should use the same CA.
	ACMEDirectory string
	// Email is the ACME account's contact (expiry notices); may be empty.
	Email string
	// ACMERoots are the roots the ACME CA's own API is verified with
	// (nil: the system's), e.g. a test CA's.
	ACMERoots *x509.CertPool
	// HTTPPort and HTTPSPort are the public ports (redirects, and where the
	// CA connects for HTTP-01 and TLS-ALPN-01); 0 means 80 and 443.
	HTTPPort, HTTPSPort int
	// ListenHost is the host part of the listeners (so certmagic finds
	// them in use and starts no challenge server of its own).
	ListenHost string
	// DisableHTTP01 and DisableTLSALPN01 turn a challenge type off.
	DisableHTTP01, DisableTLSALPN01 bool
	// H2Server picks the HTTP/2 server ("": DefaultH2Server).
	H2Server H2Server
	// RenewCheckInterval is how often certificates are checked for
	// renewal; 0 means certmagic's 10 minutes (tests use seconds).
	RenewCheckInterval time.Duration
}

const acmeChallenge = "/.well-known/acme-challenge/"

// https is a cluster Front's HTTPS: certificates managed by certmagic in
// the core's store and served by a TLSServer (SNI picks the certificate),
// and plain HTTP requests checked for ACME challenges and redirects before
// lb sees them.
type https struct {
	cfg    HTTPSConfig
	log    *slog.Logger
	store  *coreStorage
	cache  *certmagic.Cache
	magic  *certmagic.Config
	issuer *certmagic.ACMEIssuer
	report func(agentproto.TLSReport)

	routes atomic.Pointer[map[string]*tlsRoute] // by domain

	mu       sync.Mutex
	ctx      context.Context
	stop     context.CancelFunc
	managed  map[string]context.CancelFunc // ACME domains
	manual   map[string]manualCert         // by domain
	attempts map[string]int                // ACME orders started, by domain
	failures map[string]int                // in a row, by domain
	state    map[string]string             // last state reported, by domain

	srv *TLSServer
	// self is this Front's host id, in the shared failure records.
	self string
}

type manualCert struct {
	modified time.Time
	hash     string // in the cache; "" while loading
	cancel   context.CancelFunc
}

func newHTTPS(cfg HTTPSConfig, self string, call caller, report func(agentproto.TLSReport), log *slog.Logger) *https {
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 80
	}
	if cfg.HTTPSPort == 0 {
		cfg.HTTPSPort = 443
	}
	if cfg.ACMEDirectory == "" {
		cfg.ACMEDirectory = certmagic.LetsEncryptProductionCA
	}
	h := &https{cfg: cfg, self: self, log: log, store: newCoreStorage(call, log), report: report,
		managed: map[string]context.CancelFunc{}, manual: map[string]manualCert{}, attempts: map[string]int{},
		failures: map[string]int{}, state: map[string]string{}}
	h.ctx, h.stop = context.WithCancel(context.Background())
	empty := map[string]*tlsRoute{}
	h.routes.Store(&empty)
	zl := zapLogger(log.With("component", "certmagic"))
	h.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return h.magic, nil },
		RenewCheckInterval: cfg.RenewCheckInterval,
		Logger:             zl,
	})
	h.magic = certmagic.New(h.cache, certmagic.Config{Storage: h.store, OnEvent: h.onEvent, Logger: zl})
	h.issuer = certmagic.NewACMEIssuer(h.magic, certmagic.ACMEIssuer{
		CA: cfg.ACMEDirectory, Email: cfg.Email, Agreed: true, TrustedRoots: cfg.ACMERoots,
		ListenHost: cfg.ListenHost, AltHTTPPort: cfg.HTTPPort, AltTLSALPNPort: cfg.HTTPSPort,
		DisableHTTPChallenge: cfg.DisableHTTP01, DisableTLSALPNChallenge: cfg.DisableTLSALPN01,
		Logger: zl,
	})
	h.magic.Issuers = []certmagic.Issuer{h.issuer}
	h.srv = NewTLSServer(&tls.Config{
		GetCertificate: h.getCertificate,
		NextProtos:     []string{"h2", "http/1.1", acmez.ACMETLS1Protocol},
		MinVersion:     tls.VersionTLS12,
	}, log, cfg.H2Server)
	return h
}

// tlsRoute is a domain's TLS settings with its HSTS header value, made once
// per route update rather than per response.
type tlsRoute struct {
	*agentproto.RouteTLS
	hsts string // "" without HSTS
}

func newTLSRoute(t *agentproto.RouteTLS) *tlsRoute {
	r := &tlsRoute{RouteTLS: t}
	if t.HSTSMaxAge > 0 {
		r.hsts = "max-age=" + strconv.FormatInt(int64(t.HSTSMaxAge/time.Second), 10)
	}
	return r
}

// update follows the routes: ACME domains are managed (obtained or loaded
// from the store, renewed), manual ones loaded from the store, and domains
// no longer served are dropped. certmagic and the store are called outside
// h.mu: they emit events (onEvent takes h.mu) and reach the core.
func (h *https) update(routes []agentproto.Route) {
	next := map[string]*tlsRoute{}
	for _, r := range routes {
		if r.TLS != nil {
			next[strings.ToLower(r.Domain)] = newTLSRoute(r.TLS)
		}
	}
	h.routes.Store(&next)
	var unmanage, manage, unload []string
	type loadJob struct {
		domain string
		tls    *agentproto.RouteTLS
		ctx    context.Context
	}
	var load []loadJob
	managedCtx := map[string]context.Context{}
	h.mu.Lock()
	for d, cancel := range h.managed {
		if t := next[d]; t == nil || t.Mode != "acme" {
			cancel()
			delete(h.managed, d)
			unmanage = append(unmanage, d)
		}
	}
	for d, m := range h.manual {
		if t := next[d]; t == nil || t.Mode != "manual" || !t.ManualModified.Equal(m.modified) {
			m.cancel()
			if m.hash != "" {
				unload = append(unload, m.hash)
			}
			delete(h.manual, d)
		}
	}
	for d := range h.state { // forget domains no longer served
		if next[d] == nil {
			delete(h.state, d)
			delete(h.attempts, d)
			delete(h.failures, d)
		}
	}
	for d, t := range next {
		switch t.Mode {
		case "acme":
			if h.managed[d] == nil {
				ctx, cancel := context.WithCancel(h.ctx)
				h.managed[d] = cancel
				manage = append(manage, d)
				managedCtx[d] = ctx
			}
		case "manual":
			if _, ok := h.manual[d]; !ok {
				ctx, cancel := context.WithCancel(h.ctx)
				h.manual[d] = manualCert{modified: t.ManualModified, cancel: cancel}
				load = append(load, loadJob{domain: d, tls: t.RouteTLS, ctx: ctx})
			}
		}
	}
	h.mu.Unlock()

	for _, d := range unmanage {
		h.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: d}})
		h.log.Info("certificate no longer managed", "domain", d)
	}
	if len(unload) > 0 {
		h.cache.Remove(unload)
	}
	for _, d := range manage {
		// ManageAsync loads the certificate from the store when another
		// Front obtained it, otherwise obtains it in the background,
		// retrying failures with certmagic's backoff (1 min, 2 min, ... up
		// to 6 h apart) until the domain's context is cancelled.
		if err := h.magic.ManageAsync(managedCtx[d], []string{d}); err != nil {
			h.log.Warn("certificate not managed", "domain", d, "err", err)
		}
	}
	for _, j := range load {
		go h.loadManual(j.ctx, j.domain, j.tls)
	}
}

// loadManual caches the operator's certificate for d from the store,
// trying again every 10 s while the store cannot be read, until ctx ends
// (the route changed or the Front stops).
func (h *https) loadManual(ctx context.Context, d string, t *agentproto.RouteTLS) {
	for wait := time.Duration(0); ; wait = 10 * time.Second {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		err := h.loadManualOnce(ctx, d, t)
		if err == nil {
			return
		}
		h.log.Warn("uploaded certificate not loaded; trying again in 10s", "domain", d, "err", err)
		h.setState(d, agentproto.TLSReport{State: "error", Error: err.Error()})
	}
}

func (h *https) loadManualOnce(ctx context.Context, d string, t *agentproto.RouteTLS) error {
	lctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	data, err := h.store.Load(lctx, t.ManualKey)
	if err != nil {
		return err
	}
	var certPEM, keyPEM bytes.Buffer
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			_ = pem.Encode(&certPEM, b)
		} else {
			_ = pem.Encode(&keyPEM, b)
		}
	}
	hash, err := h.magic.CacheUnmanagedCertificatePEMBytes(lctx, certPEM.Bytes(), keyPEM.Bytes(), []string{"manual"})
	if err != nil {
		return err
	}
	h.mu.Lock()
	m, ok := h.manual[d]
	if ok && ctx.Err() == nil {
		m.hash = hash
		h.manual[d] = m
	}
	h.mu.Unlock()
	if !ok || ctx.Err() != nil {
		h.cache.Remove([]string{hash}) // replaced or dropped meanwhile
		return nil
	}
	rep := agentproto.TLSReport{State: "valid", Issuer: "manual"}
	if pair, err := tls.X509KeyPair(certPEM.Bytes(), keyPEM.Bytes()); err == nil && pair.Leaf != nil {
		na := pair.Leaf.NotAfter
		rep.NotAfter = &na
	}
	h.setState(d, rep)
	h.log.Info("uploaded certificate loaded", "domain", d)
	return nil
}

// retrySchedule mirrors certmagic's waits between failed attempts, to tell
// the operator when the next one comes.
var retrySchedule = []time.Duration{time.Minute, 2 * time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
	10 * time.Minute, 10 * time.Minute, 20 * time.Minute, 20 * time.Minute, 20 * time.Minute, 20 * time.Minute, 30 * time.Minute}

// onEvent turns certmagic's events into state transitions, logged and
// reported to the core once each.
func (h *https) onEvent(ctx context.Context, event string, data map[string]any) error {
	id, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		// Another Front's failure holds for every Front: an order now
		// would fail the same way, and each Front retrying on its own
		// schedule would multiply the CA's failed validations.
		if f, ok := h.sharedFailure(ctx, id); ok && f.Host != h.self && time.Now().Before(f.NextAttempt) {
			h.log.Info("certificate order skipped: another Front failed recently", "domain", id, "front", f.Host, "next_attempt", f.NextAttempt)
			return fmt.Errorf("%s failed on Front %s; next attempt %s", id, f.Host, f.NextAttempt.Format(time.RFC3339))
		}
		h.mu.Lock()
		h.attempts[id]++
		h.mu.Unlock()
		h.setState(id, agentproto.TLSReport{State: "obtaining"})
	case "cert_obtained":
		h.mu.Lock()
		h.failures[id] = 0
		h.mu.Unlock()
		if err := h.store.Delete(ctx, failureKey(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.log.Warn("failure record not removed", "domain", id, "err", err)
		}
		issuer, _ := data["issuer"].(string)
		path, _ := data["certificate_path"].(string)
		// The new certificate is in the store, not yet in the cache.
		go func() {
			h.setState(id, agentproto.TLSReport{State: "valid", Issuer: issuer, NotAfter: h.storedNotAfter(path)})
		}()
	case "cached_managed_cert":
		sans, _ := data["sans"].([]string)
		for _, d := range sans {
			// An order that finished after its domain's HTTPS was turned
			// off (or the installation deleted) caches a certificate that
			// update had already unmanaged: drop it, or certmagic would
			// keep it and renew it.
			if t, served := (*h.routes.Load())[d]; !served || t.Mode != "acme" {
				h.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: d}})
				h.log.Info("certificate no longer managed", "domain", d)
				continue
			}
			h.setState(d, agentproto.TLSReport{State: "valid", NotAfter: h.notAfter(d)})
		}
	case "cert_failed":
		h.mu.Lock()
		n := h.failures[id]
		h.failures[id]++
		h.mu.Unlock()
		next := time.Now().Add(retrySchedule[min(n, len(retrySchedule)-1)]).UTC().Truncate(time.Second)
		msg := fmt.Sprint(data["error"])
		// Written while certmagic still holds the domain's lock, so the
		// Front waiting for it sees the failure before it orders.
		h.recordFailure(ctx, id, sharedFailure{Host: h.self, NextAttempt: next, Error: msg})
		h.setState(id, agentproto.TLSReport{State: "error", Error: msg, NextAttempt: &next})
	}
	return nil
}

// sharedFailure is a Front's last failed order for a domain, kept in the
// store for the other Fronts of the installation.
type sharedFailure struct {
	Host        string    `json:"host"`
	NextAttempt time.Time `json:"next_attempt"`
	Error       string    `json:"error"`
}

// failureKey is where a domain's sharedFailure is kept (readable by the
// Fronts of its installation only, as certificates are).
func failureKey(domain string) string { return "failures/" + domain + ".json" }

// sharedFailure and recordFailure, like every store call, are bounded by
// storeTimeout (coreStorage.do).
func (h *https) sharedFailure(ctx context.Context, domain string) (sharedFailure, bool) {
	var f sharedFailure
	data, err := h.store.Load(ctx, failureKey(domain))
	if err != nil || json.Unmarshal(data, &f) != nil {
		return f, false
	}
	return f, true
}

func (h *https) recordFailure(ctx context.Context, domain string, f sharedFailure) {
	data, _ := json.Marshal(f)
	if err := h.store.Store(ctx, failureKey(domain), data); err != nil {
		h.log.Warn("failure not shared with the other Fronts", "domain", domain, "err", err)
	}
}

// storedNotAfter is the expiry of the certificate stored at key.
func (h *https) storedNotAfter(key string) *time.Time {
	data, err := h.store.Load(h.ctx, key)
	if err != nil {
		return nil
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return &leaf.NotAfter
}

func (h *https) notAfter(domain string) *time.Time {
	for _, c := range h.cache.AllMatchingCertificates(domain) {
		if c.Leaf != nil {
			na := c.Leaf.NotAfter
			return &na
		}
	}
	return nil
}

// setState logs and reports a domain's certificate state when it changed.
func (h *https) setState(domain string, rep agentproto.TLSReport) {
	if domain == "" {
		return
	}
	rep.Domain = domain
	key := rep.State + "\x00" + rep.Error
	h.mu.Lock()
	if _, served := (*h.routes.Load())[domain]; !served || h.state[domain] == key {
		h.mu.Unlock()
		return
	}
	h.state[domain] = key
	h.mu.Unlock()
	if rep.State == "error" {
		h.log.Warn("certificate", "domain", domain, "state", rep.State, "err", rep.Error, "next_attempt", rep.NextAttempt)
	} else {
		h.log.Info("certificate", "domain", domain, "state", rep.State, "not_after", rep.NotAfter)
	}
	go h.report(rep)
}

// Attempts is how many times an ACME order was started for domain.
func (h *https) Attempts(domain string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.attempts[domain]
}

// getCertificate picks the certificate for a TLS handshake, for the domains
// served with HTTPS only: a certificate still cached for a domain whose
// HTTPS was turned off is never handed out. A CA's TLS-ALPN-01 check
// (acme-tls/1 alone in ALPN) goes to certmagic whatever the routes say: it
// gets only a challenge certificate, from the store, and may come before
// this Front has the route of a domain another Front is ordering.
func (h *https) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	challenge := len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
	if _, ok := lb.LookupHost(*h.routes.Load(), []byte(hello.ServerName)); !ok && !challenge {
		return nil, fmt.Errorf("https: no HTTPS for server name %q", hello.ServerName)
	}
	return h.magic.GetCertificate(hello)
}

// wrap answers ACME HTTP-01 challenges and redirects before lb routes a
// plain request, and adds HSTS to HTTPS answers.
func (h *https) wrap(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	challenge := fasthttpHandler(func(w http.ResponseWriter, r *http.Request) bool {
		return h.issuer.HandleHTTPChallenge(w, r)
	})
	return func(ctx *fasthttp.RequestCtx) {
		rt, _ := lb.LookupHost(*h.routes.Load(), ctx.Host())
		if !ctx.IsTLS() {
			if bytes.HasPrefix(ctx.Path(), []byte(acmeChallenge)) && challenge(ctx) {
				return
			}
			if rt != nil && rt.RedirectHTTP {
				u := "https://" + hostOnly(ctx.Host())
				if h.cfg.HTTPSPort != 443 {
					u += ":" + strconv.Itoa(h.cfg.HTTPSPort)
				}
				ctx.Redirect(u+string(ctx.RequestURI()), fasthttp.StatusPermanentRedirect)
				return
			}
			next(ctx)
			return
		}
		next(ctx)
		if rt != nil && rt.hsts != "" {
			ctx.Response.Header.Set("Strict-Transport-Security", rt.hsts)
		}
	}
}

// hostOnly is a Host header's name, lower case, without its port (for a
// redirect's URL; wrap's lookup goes through lb.LookupHost, which does not
// allocate).
func hostOnly(host []byte) string {
	s := string(host)
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.HasSuffix(s, "]") {
		s = s[:i]
	}
	return strings.ToLower(s)
}

// close stops certificate maintenance (the TLS server is closed by the
// Front first).
func (h *https) close() {
	h.stop()
	h.cache.Stop()
	h.store.close()
}

// reportTLS sends a TLS report to the core (best effort: the next state
// change reports again).
func reportTLS(call caller, log *slog.Logger) func(agentproto.TLSReport) {
	return func(rep agentproto.TLSReport) {
		body, _ := json.Marshal(rep)
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		code, msg, err := call(ctx, http.MethodPost, agentproto.PathTLSStatus, body, 4096)
		if err != nil || code != http.StatusNoContent {
			log.Warn("certificate state not reported to the core", "domain", rep.Domain, "status", code, "err", err, "answer", string(msg))
		}
	}
}
