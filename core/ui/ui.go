// Package ui serves the core's web UI under /ui/: server-rendered pages
// (html/template, embedded templates and assets, a little vanilla JS) with
// the paper's menu — Main | Apps: Add, List | Hosts: List | Installations:
// Add, List | Containers: List.
//
// The UI is a client of the public API: every page calls the API handler
// in-process with the logged-in user's token, so auth, scopes, validation,
// forwarding to the leader, request ids and limits are exactly the API's.
// Login exchanges a token (the operator's, or an app-owner or read-only
// token; failed logins are rate limited per address) for a random session id in an
// HttpOnly, SameSite=Strict cookie; the session is kept by the cluster, so
// it is valid on every core node until it expires or the user logs out on
// any of them (session.go). Every form carries a per-session CSRF token;
// POSTs from other sites are refused.
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/internal/human"
	"potluck/internal/jsonhttp"
	"potluck/internal/ratelimit"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Prefix is where the UI is mounted.
const Prefix = "/ui/"

const cookieName = "potluck_session"

// Config configures the UI.
type Config struct {
	// API is the public API handler of this core node; the UI calls it
	// in-process.
	API            http.Handler
	Logger         *slog.Logger
	MaxUploadBytes int64 // image uploads; 0 = 2 GiB (the API applies its own limit too)
	MaxFormBytes   int64 // other forms; 0 = 64 KiB
	// SessionTTL is how long a login lasts; 0 = 12h, at most 7 days (the
	// cluster keeps at most fsm.MaxUISessions sessions).
	SessionTTL time.Duration
	// Secure marks the session cookie Secure (set when the API is HTTPS).
	Secure bool
	// FailedLogins limits failed logins per client address (zero: the
	// ratelimit defaults).
	FailedLogins ratelimit.Config
	// LeaderKnown reports whether this node knows a raft leader now. When
	// it does not, pages are read from the node's own copy at once rather
	// than after the API's wait for a leader (5 s per call, 10 s per page);
	// nil: always ask as for a leader.
	LeaderKnown func() bool
}

// Handler is the UI's http.Handler.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessions
	apiHTTP  *http.Client
	logins   *ratelimit.Limiter
}

// New builds the UI handler.
func New(cfg Config) (*Handler, error) {
	if cfg.API == nil {
		return nil, errors.New("ui: API handler is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxUploadBytes == 0 {
		cfg.MaxUploadBytes = 2 << 30
	}
	if cfg.MaxFormBytes == 0 {
		cfg.MaxFormBytes = 64 << 10
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.SessionTTL < time.Minute || cfg.SessionTTL > 7*24*time.Hour {
		return nil, fmt.Errorf("ui: session TTL %s: between 1m and 168h", cfg.SessionTTL)
	}
	h := &Handler{cfg: cfg, log: cfg.Logger.With("component", "ui"), mux: http.NewServeMux(),
		apiHTTP: &http.Client{Transport: handlerTransport{cfg.API}}, logins: ratelimit.New(cfg.FailedLogins)}
	h.sessions = &sessions{api: h.apiHTTP, ttl: cfg.SessionTTL}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	h.routes()
	return h, nil
}

func (h *Handler) parseTemplates() error {
	funcs := template.FuncMap{
		"cpus":  func(m int64) string { return strconv.FormatFloat(float64(m)/1000, 'f', -1, 64) },
		"bytes": human.Bytes,
		"short": func(s string, n int) string {
			if len(s) > n {
				return s[:n] + "…"
			}
			return s
		},
		"ago":     ago,
		"list":    func(s ...string) []string { return s },
		"pct":     func(f float64) string { return strconv.FormatFloat(math.Round(1000*f)/10, 'f', -1, 64) },
		"running": running,
		"envlist": func(m map[string]string) string {
			var kv []string
			for k, v := range m {
				kv = append(kv, k+"="+v)
			}
			sort.Strings(kv)
			return strings.Join(kv, " ")
		},
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return fmt.Errorf("ui: templates: %w", err)
	}
	h.pages = map[string]*template.Template{}
	for _, p := range []string{"login", "main", "apps", "app_new", "hosts", "installations", "installation_new", "containers", "installation", "notfound", "app", "host"} {
		t, err := template.Must(base.Clone()).ParseFS(assets, "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("ui: template %s: %w", p, err)
		}
		h.pages[p] = t
	}
	return nil
}

func (h *Handler) routes() {
	static, _ := fs.Sub(assets, "static")
	h.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /ui/login", h.loginPage)
	h.mux.HandleFunc("POST /ui/login", h.login)
	h.mux.HandleFunc("POST /ui/logout", h.authed(h.logout))

	h.mux.HandleFunc("GET /ui/{$}", h.authed(h.mainPage))
	h.mux.HandleFunc("GET /ui/apps", h.authed(h.appsPage))
	h.mux.HandleFunc("GET /ui/apps/new", h.authed(h.appNewPage))
	h.mux.HandleFunc("POST /ui/apps", h.authedStream(h.uploadApp))
	h.mux.HandleFunc("POST /ui/apps/{name}/delete", h.authed(h.deleteApp))
	h.mux.HandleFunc("GET /ui/apps/{name}", h.authed(h.appPage))
	h.mux.HandleFunc("GET /ui/hosts", h.authed(h.hostsPage))
	h.mux.HandleFunc("POST /ui/hosts/{id}/decommission", h.authed(h.decommissionHost))
	h.mux.HandleFunc("GET /ui/hosts/{id}", h.authed(h.hostPage))
	h.mux.HandleFunc("GET /ui/installations", h.authed(h.installationsPage))
	h.mux.HandleFunc("GET /ui/installations/new", h.authed(h.installationNewPage))
	h.mux.HandleFunc("POST /ui/installations", h.authed(h.createInstallation))
	h.mux.HandleFunc("POST /ui/installations/{name}/scale", h.authed(h.scaleInstallation))
	h.mux.HandleFunc("POST /ui/installations/{name}/delete", h.authed(h.deleteInstallation))
	h.mux.HandleFunc("GET /ui/installations/{name}", h.authed(h.installationPage))
	h.mux.HandleFunc("POST /ui/installations/{name}/rollback", h.authed(h.rollback))
	h.mux.HandleFunc("POST /ui/installations/{name}/autoscale", h.authed(h.setAutoscale))
	h.mux.HandleFunc("GET /ui/containers", h.authed(h.containersPage))
	h.mux.HandleFunc("/ui/", h.authed(func(w http.ResponseWriter, r *http.Request, rq *request) {
		// The path is not echoed: a crafted link must not put its text on a
		// Potluck page.
		h.notFound(w, r, rq, "There is no such page.")
	}))
}

// ServeHTTP sets the security headers and refuses cross-site POSTs.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	// The API, called in-process, counts failed tokens against the
	// browser's address, not against the UI.
	h.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), remoteAddrKey{}, r.RemoteAddr)))
}

// sameOrigin is a second line of defence besides the CSRF token: browsers
// say where a request comes from (Sec-Fetch-Site, Origin).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

// ---- sessions and auth ----

type ctxKey struct{}

type request struct {
	se     *session
	client *apiclient.Client
	flash  *flash // the notice this page shows, if any
}

// authed runs next for a logged-in browser, checks the CSRF token of
// POSTs (url-encoded forms only), and sends others to the login page.
func (h *Handler) authed(next func(w http.ResponseWriter, r *http.Request, rq *request)) http.HandlerFunc {
	return h.session(next, false)
}

// authedStream is authed for the streamed multipart upload, whose handler
// checks the CSRF field itself before it reads the file.
func (h *Handler) authedStream(next func(w http.ResponseWriter, r *http.Request, rq *request)) http.HandlerFunc {
	return h.session(next, true)
}

func (h *Handler) session(next func(w http.ResponseWriter, r *http.Request, rq *request), streamed bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Cookie(cookieName)
		var se *session
		err := errNoSession
		if c != nil {
			ctx, cancel := timeout(r)
			se, err = h.sessions.get(ctx, c.Value, h.cfg.LeaderKnown == nil || h.cfg.LeaderKnown())
			cancel()
		}
		if err != nil && !errors.Is(err, errNoSession) {
			// The cluster cannot say now (no leader, for one): the
			// session may well be valid, so it is kept.
			http.Error(w, "cannot check the session now: "+jsonhttp.MessageOf(err)+"; retry shortly", apiStatus(err))
			return
		}
		if se == nil {
			if c != nil {
				h.clearCookie(w, cookieName)
			}
			if r.Method == http.MethodGet && r.URL.Query().Get("fragment") == "" {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "not logged in (or the session expired): log in again at /ui/login", http.StatusUnauthorized)
			return
		}
		if se.stale && r.Method != http.MethodGet {
			http.Error(w, "the cluster has no leader now, so nothing can be changed and the session cannot be confirmed; retry shortly", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPost && !streamed {
			r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxFormBytes)
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || !se.validCSRF(r.PostFormValue("csrf")) {
				http.Error(w, "invalid or missing CSRF token: reload the page and try again", http.StatusForbidden)
				return
			}
		}
		opts := []apiclient.Option{apiclient.WithHTTPClient(h.apiHTTP), apiclient.WithRetries(0, 0)}
		if se.stale {
			opts = append(opts, apiclient.WithStaleReads())
		}
		client, err := apiclient.New("http://core.invalid", se.token, opts...)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		rq := &request{se: se, client: client}
		if r.Method == http.MethodGet && r.URL.Query().Get("fragment") == "" {
			if fc, _ := r.Cookie(flashCookie); fc != nil {
				h.clearCookie(w, flashCookie)
				if f, ok := se.openFlash(fc.Value); ok {
					rq.flash = &f
				}
			}
		}
		next(w, r, rq)
	}
}

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "login", &page{Title: "Log in"})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxFormBytes)
	client := clientHost(r.RemoteAddr)
	if ok, wait := h.logins.Allow(client); !ok {
		code, msg := tooManyLogins(w, wait)
		h.render(w, r, code, "login", &page{Title: "Log in", Error: msg})
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		h.render(w, r, http.StatusBadRequest, "login", &page{Title: "Log in", Error: "Enter the operator token, or an app-owner or read-only token."})
		return
	}
	api, err := apiclient.New("http://core.invalid", token, apiclient.WithHTTPClient(h.apiHTTP), apiclient.WithRetries(0, 0))
	if err == nil {
		_, err = api.Status(r.Context()) // any token but a join token
	}
	if err != nil {
		code, msg := http.StatusBadGateway, "The core did not answer: "+err.Error()
		switch apiclient.StatusOf(err) {
		case http.StatusUnauthorized, http.StatusForbidden:
			h.logins.Fail(client)
			code, msg = http.StatusUnauthorized, "Wrong token: the UI needs the operator token, or an app-owner or read-only token."
		case http.StatusTooManyRequests: // the API's own count got there first
			h.logins.Fail(client)
			_, wait := h.logins.Allow(client)
			code, msg = tooManyLogins(w, wait)
		}
		h.log.Info("ui login failed", "remote", r.RemoteAddr, "status", apiclient.StatusOf(err))
		h.render(w, r, code, "login", &page{Title: "Log in", Error: msg})
		return
	}
	se, err := h.sessions.create(r.Context(), token)
	if err != nil {
		h.render(w, r, apiStatus(err), "login", &page{Title: "Log in", Error: "The session could not be opened: " + jsonhttp.MessageOf(err)})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: se.id, Path: Prefix, HttpOnly: true, Secure: h.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(h.cfg.SessionTTL.Seconds())})
	h.log.Info("ui login", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// tooManyLogins sets Retry-After to wait and returns the status and message
// of a login refused by the failed-login limit.
func tooManyLogins(w http.ResponseWriter, wait time.Duration) (int, string) {
	secs := ratelimit.RetryAfterSeconds(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return http.StatusTooManyRequests, fmt.Sprintf("Too many failed logins from this address: try again in %d s.", secs)
}

// logout ends the session on every core node. If the cluster cannot
// record that now, the user is told so and stays logged in, rather than
// believing a session ended that still works elsewhere.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx, cancel := timeout(r)
	defer cancel()
	if err := h.sessions.remove(ctx, rq.se.id); err != nil {
		h.redirectErr(w, r, rq, "/ui/", "Logging out failed, the session is still open: "+jsonhttp.MessageOf(err)+". Try again.")
		return
	}
	h.clearCookie(w, cookieName)
	h.log.Info("ui logout", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (h *Handler) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: Prefix, HttpOnly: true, Secure: h.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// setFlash makes the next page of this session show f once. The notice
// travels in a cookie signed with a key of the session, so any core node
// shows it and nobody else can make the UI display their text.
func (h *Handler) setFlash(w http.ResponseWriter, rq *request, f flash) {
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: rq.se.flashValue(f), Path: Prefix, HttpOnly: true, Secure: h.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: 300})
}

// ---- rendering ----

// page is what every template gets.
type page struct {
	Title  string
	Active string // menu entry
	CSRF   string
	Flash  string
	Error  string
	Index  uint64 // state index of Data, for live refresh
	Live   string // URL of the live fragment
	Next   string // URL of a list's next page; "" on the last
	First  string // URL of a list's first page, on the pages after it
	Data   any
	Form   map[string]string
	// Stale: without a leader, the page shows this node's own copy.
	Stale bool
}

func (h *Handler) newPage(r *http.Request, rq *request, title, active string) *page {
	p := &page{Title: title, Active: active, CSRF: rq.se.csrf, Form: map[string]string{}, Stale: rq.se.stale}
	if f := rq.flash; f != nil {
		if f.isErr {
			p.Error = f.msg
		} else {
			p.Flash = f.msg
		}
	}
	return p
}

// render executes a page into a buffer first, so that a template error
// gives a clean 500 instead of half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, name string, p *page) {
	h.execute(w, r, code, name, "layout", p)
}

func (h *Handler) execute(w http.ResponseWriter, r *http.Request, code int, name, tmpl string, p *page) {
	var buf bytes.Buffer
	if err := h.pages[name].ExecuteTemplate(&buf, tmpl, p); err != nil {
		h.fail(w, r, fmt.Errorf("rendering %s: %w", name, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if p.Index != 0 {
		w.Header().Set(apiclient.HeaderIndex, strconv.FormatUint(p.Index, 10))
	}
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail answers an unexpected error without details (they go to the log).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("ui", "path", r.URL.Path, "err", err)
	http.Error(w, "internal error in the UI; see the core's log", http.StatusInternalServerError)
}

// apiStatus maps an API error to the status the UI answers with.
func apiStatus(err error) int {
	if s := apiclient.StatusOf(err); s != 0 {
		return s
	}
	return http.StatusBadGateway
}

// redirect sends the browser to path (POST/redirect/GET) with a notice
// that the next page of this session shows. The notice is signed with the
// session's key, not put in the URL, so that nobody can craft a link that
// makes the UI display their text.
func (h *Handler) redirect(w http.ResponseWriter, r *http.Request, rq *request, path, msg string) {
	h.setFlash(w, rq, flash{msg: msg})
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// redirectErr is redirect with an error message instead of a notice.
func (h *Handler) redirectErr(w http.ResponseWriter, r *http.Request, rq *request, path, msg string) {
	h.setFlash(w, rq, flash{msg: msg, isErr: true})
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// liveQuery reads ?fragment=1&index=N&wait=D: a fragment request holds
// until the state changes (a blocking query on the API), at most 60s.
func liveQuery(r *http.Request) (fragment bool, q *apiclient.Query) {
	v := r.URL.Query()
	q = &apiclient.Query{Limit: PageSize, Cursor: v.Get("cursor")}
	if v.Get("fragment") == "" {
		return false, q
	}
	idx, err := strconv.ParseUint(v.Get("index"), 10, 64)
	if err != nil || idx == 0 {
		return true, q
	}
	wait, err := time.ParseDuration(v.Get("wait"))
	if err != nil || wait <= 0 || wait > time.Minute {
		wait = 30 * time.Second
	}
	q.Index, q.Wait = idx, wait
	return true, q
}

// PageSize is how many items a list page of the UI shows; a "Next page"
// link continues from where it ended.
const PageSize = 100

// ---- in-process transport ----

// handlerTransport answers requests by calling the API handler directly:
// no socket, no TLS, same code path as a remote client. The request body
// (an upload) is streamed into the handler; the answer (JSON, small) is
// buffered.
type handlerTransport struct{ h http.Handler }

// remoteAddrKey holds the browser's address in a request's context, for
// the API calls made on its behalf.
type remoteAddrKey struct{}

// clientHost is the IP of a remote address (the address itself when it has
// no port).
func clientHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	}
	// A client request with a body of unknown length has ContentLength 0;
	// on the server side 0 means "no body" (and a forwarding proxy would
	// drop it), unknown is -1.
	if r.ContentLength == 0 && r.Body != http.NoBody {
		r.ContentLength = -1
	}
	r.RemoteAddr = "127.0.0.1:0"
	if addr, ok := req.Context().Value(remoteAddrKey{}).(string); ok {
		r.RemoteAddr = addr
	}
	r.RequestURI = r.URL.RequestURI()
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	t.h.ServeHTTP(rec, r)
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rec.code, http.StatusText(rec.code)), StatusCode: rec.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rec.header, Body: io.NopCloser(&rec.body), ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

type recorder struct {
	header      http.Header
	code        int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.body.Write(b)
}

func (r *recorder) Flush() {}

// ---- helpers ----

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return human.Age(t, time.Now()) + " ago"
}

func running(is []apiclient.Instance) int {
	n := 0
	for _, i := range is {
		if i.State == "running" {
			n++
		}
	}
	return n
}

// timeout bounds a non-blocking API call made for a page.
func timeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}
