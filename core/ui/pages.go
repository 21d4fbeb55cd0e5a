package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"potluck/apiclient"
	"potluck/internal/human"
)

// listCtx is the context for a list call: blocking queries may wait up to
// their wait time, others are bounded at 30s.
func listCtx(r *http.Request, q *apiclient.Query) (context.Context, context.CancelFunc) {
	if q != nil {
		return context.WithTimeout(r.Context(), q.Wait+10*time.Second)
	}
	return timeout(r)
}

// ---- Main ----

type mainData struct {
	Status *apiclient.Status
	Hosts  []string
	// Instances by state (pending, failed, lost, draining, running), and
	// the installations with a failed or lost instance.
	States  map[string]int
	Trouble []string
}

func (h *Handler) mainPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Main", "main")
	ctx, cancel := timeout(r)
	defer cancel()
	st, err := rq.client.Status(ctx)
	if err != nil {
		p.Error = err.Error()
		h.render(w, r, apiStatus(err), "main", p)
		return
	}
	d := mainData{Status: st}
	for _, k := range []string{"ready", "pending", "down", "decommissioned"} {
		if n := st.Hosts[k]; n > 0 {
			d.Hosts = append(d.Hosts, fmt.Sprintf("%d %s", n, k))
		}
	}
	d.States = map[string]int{}
	if cs, _, err := rq.client.Containers(ctx, nil); err == nil {
		trouble := map[string]bool{}
		for _, c := range cs {
			d.States[c.State]++
			if (c.State == "failed" || c.State == "lost") && !trouble[c.Installation] {
				trouble[c.Installation] = true
				d.Trouble = append(d.Trouble, c.Installation)
			}
		}
	}
	p.Data, p.Index = d, st.StateIndex
	h.render(w, r, http.StatusOK, "main", p)
}

// ---- Apps ----

func (h *Handler) appsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Apps", "apps")
	fragment, q := liveQuery(r)
	ctx, cancel := listCtx(r, q)
	defer cancel()
	apps, meta, err := rq.client.Apps(ctx, q)
	h.list(w, r, p, "apps", fragment, apps, meta, err, "/ui/apps")
}

// list renders a list page, or just its table for a live refresh.
func (h *Handler) list(w http.ResponseWriter, r *http.Request, p *page, name string, fragment bool, data any, meta apiclient.Meta, err error, live string) {
	if err != nil {
		if fragment {
			http.Error(w, err.Error(), apiStatus(err))
			return
		}
		p.Error = err.Error()
		h.render(w, r, apiStatus(err), name, p)
		return
	}
	p.Data, p.Index, p.Live = data, meta.Index, live+"?fragment=1"
	if cursor := r.URL.Query().Get("cursor"); cursor != "" {
		p.Live += "&cursor=" + url.QueryEscape(cursor)
		p.First = live
	}
	if meta.Next != "" {
		p.Next = live + "?cursor=" + url.QueryEscape(meta.Next)
	}
	if fragment {
		h.execute(w, r, http.StatusOK, name, "table", p)
		return
	}
	h.render(w, r, http.StatusOK, name, p)
}

func (h *Handler) appNewPage(w http.ResponseWriter, r *http.Request, rq *request) {
	h.render(w, r, http.StatusOK, "app_new", h.newPage(r, rq, "Add app", "app_new"))
}

// headerXHRUpload marks an upload sent by the page's script.
const headerXHRUpload = "X-Potluck-Upload"

var formNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// uploadApp reads the multipart form as a stream: the small fields (csrf,
// name, port) must come before the file, which is streamed straight into the
// API's upload (and so to the blob store) without touching the disk here.
func (h *Handler) uploadApp(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Add app", "app_new")
	fail := func(code int, msg string) {
		p.Error = msg
		h.render(w, r, code, "app_new", p)
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.cfg.MaxUploadBytes+1<<20)
	mr, err := r.MultipartReader()
	if err != nil {
		fail(http.StatusBadRequest, "Send the form as multipart/form-data.")
		return
	}
	csrfOK := false
	for fields := 0; ; fields++ {
		if fields > 8 {
			fail(http.StatusBadRequest, "Too many form fields: send csrf, name, port and file.")
			return
		}
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			fail(http.StatusBadRequest, "Choose a tarball file (the output of docker save IMAGE -o FILE).")
			return
		}
		if err != nil {
			fail(http.StatusBadRequest, "Reading the form failed: "+err.Error())
			return
		}
		field := part.FormName()
		if field != "file" {
			v, err := smallField(part)
			if err != nil {
				fail(http.StatusBadRequest, err.Error())
				return
			}
			switch field {
			case "csrf":
				csrfOK = rq.se.validCSRF(v)
			case "name", "port":
				p.Form[field] = strings.TrimSpace(v)
			}
			continue
		}
		if !csrfOK {
			http.Error(w, "invalid or missing CSRF token: reload the page and try again", http.StatusForbidden)
			return
		}
		name := p.Form["name"]
		if !formNamePattern.MatchString(name) {
			fail(http.StatusBadRequest, "Name: 1-63 characters of a-z, 0-9 and -, starting and ending with a letter or digit.")
			return
		}
		port := 0
		if s := p.Form["port"]; s != "" {
			if port, err = strconv.Atoi(s); err != nil || port < 1 || port > 65535 {
				fail(http.StatusBadRequest, "Container port: a number 1-65535.")
				return
			}
		}
		app, err := rq.client.UploadApp(r.Context(), name, port, part, -1, nil)
		if err != nil {
			fail(apiStatus(err), "Upload failed: "+err.Error())
			return
		}
		h.log.Info("ui: app uploaded", "app", app.Name, "digest", app.Digest, "size", app.Size)
		msg := fmt.Sprintf("App %s uploaded (%s, %s).", app.Name, app.Image, human.Bytes(app.Size))
		if r.Header.Get(headerXHRUpload) != "" {
			// The page's script sent it (for the progress bar): tell it
			// where to go instead of redirecting the XHR itself, which
			// would use up the notice.
			h.setFlash(w, rq, flash{msg: msg})
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "/ui/apps")
			return
		}
		h.redirect(w, r, rq, "/ui/apps", msg)
		return
	}
}

func smallField(part *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(part, 1025))
	if err != nil {
		return "", fmt.Errorf("reading field %s: %w", part.FormName(), err)
	}
	if len(b) > 1024 {
		return "", fmt.Errorf("field %s is too long", part.FormName())
	}
	return string(b), nil
}

func (h *Handler) deleteApp(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	ctx, cancel := timeout(r)
	defer cancel()
	if err := rq.client.DeleteApp(ctx, name); err != nil {
		p := h.newPage(r, rq, "Apps", "apps")
		p.Error = "Deleting app " + name + " failed: " + err.Error()
		apps, meta, lerr := rq.client.Apps(ctx, nil)
		if lerr == nil {
			p.Data, p.Index, p.Live = apps, meta.Index, "/ui/apps?fragment=1"
		}
		h.render(w, r, apiStatus(err), "apps", p)
		return
	}
	h.redirect(w, r, rq, "/ui/apps", "App "+name+" deleted.")
}

// ---- Hosts ----

func (h *Handler) hostsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Hosts", "hosts")
	fragment, q := liveQuery(r)
	ctx, cancel := listCtx(r, q)
	defer cancel()
	hosts, meta, err := rq.client.Hosts(ctx, q)
	h.list(w, r, p, "hosts", fragment, hosts, meta, err, "/ui/hosts")
}

func (h *Handler) decommissionHost(w http.ResponseWriter, r *http.Request, rq *request) {
	id := r.PathValue("id")
	ctx, cancel := timeout(r)
	defer cancel()
	host, err := rq.client.DecommissionHost(ctx, id)
	if err != nil {
		p := h.newPage(r, rq, "Hosts", "hosts")
		p.Error = "Decommissioning " + id + " failed: " + err.Error()
		if hosts, meta, lerr := rq.client.Hosts(ctx, nil); lerr == nil {
			p.Data, p.Index, p.Live = hosts, meta.Index, "/ui/hosts?fragment=1"
		}
		h.render(w, r, apiStatus(err), "hosts", p)
		return
	}
	msg := "Host " + host.Name + " decommissioned."
	if host.Status == "draining" {
		msg = "Host " + host.Name + " is draining: its instances get replacements on other hosts; it is decommissioned once they run."
	}
	h.redirect(w, r, rq, "/ui/hosts", msg)
}

// ---- Installations ----

func (h *Handler) installationsPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Installations", "installations")
	fragment, q := liveQuery(r)
	ctx, cancel := listCtx(r, q)
	defer cancel()
	is, meta, err := rq.client.Installations(ctx, q)
	h.list(w, r, p, "installations", fragment, is, meta, err, "/ui/installations")
}

type installationForm struct {
	Apps []apiclient.App
}

func (h *Handler) installationNewPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Add installation", "installation_new")
	p.Form = map[string]string{"fronts": "1", "backs": "1", "cpus": "0.5", "memory": "256", "app": r.URL.Query().Get("app")}
	h.renderInstallationForm(w, r, rq, http.StatusOK, p)
}

func (h *Handler) renderInstallationForm(w http.ResponseWriter, r *http.Request, rq *request, code int, p *page) {
	ctx, cancel := timeout(r)
	defer cancel()
	apps, _, err := rq.client.Apps(ctx, nil)
	if err != nil && p.Error == "" {
		p.Error = err.Error()
	}
	p.Data = installationForm{Apps: apps}
	h.render(w, r, code, "installation_new", p)
}

func (h *Handler) createInstallation(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Add installation", "installation_new")
	for _, k := range []string{"name", "app", "domain", "fronts", "backs", "cpus", "memory", "env"} {
		p.Form[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	req, err := parseInstallationForm(p.Form)
	if err != nil {
		p.Error = err.Error()
		h.renderInstallationForm(w, r, rq, http.StatusBadRequest, p)
		return
	}
	ctx, cancel := timeout(r)
	defer cancel()
	in, err := rq.client.CreateInstallation(ctx, req)
	if err != nil {
		p.Error = "Creating the installation failed: " + err.Error()
		h.renderInstallationForm(w, r, rq, apiStatus(err), p)
		return
	}
	h.redirect(w, r, rq, "/ui/installations", fmt.Sprintf("Installation %s created: %d instance(s) placed.", in.Name, len(in.Instances)))
}

func parseInstallationForm(f map[string]string) (apiclient.CreateInstallationRequest, error) {
	req := apiclient.CreateInstallationRequest{Name: f["name"], App: f["app"], Domain: f["domain"]}
	if req.App == "" {
		return req, errors.New("Choose an app.")
	}
	if req.Name == "" {
		req.Name = req.App
	}
	if req.Domain == "" {
		return req, errors.New("Enter the domain the Fronts serve it on, e.g. hello.example.com.")
	}
	var err error
	if req.Fronts, err = strconv.Atoi(f["fronts"]); err != nil {
		return req, errors.New("Fronts: a whole number, e.g. 1.")
	}
	if req.Backs, err = strconv.Atoi(f["backs"]); err != nil {
		return req, errors.New("Backs: a whole number, e.g. 2.")
	}
	if s := f["cpus"]; s != "" {
		if req.CPUs, err = strconv.ParseFloat(s, 64); err != nil || req.CPUs <= 0 {
			return req, errors.New("CPUs per instance: a positive number, e.g. 0.5.")
		}
	}
	if s := f["memory"]; s != "" {
		if req.MemoryMB, err = strconv.ParseInt(s, 10, 64); err != nil || req.MemoryMB <= 0 {
			return req, errors.New("Memory per instance: a whole number of MiB, e.g. 256.")
		}
	}
	if s := f["env"]; s != "" {
		req.Env = map[string]string{}
		for _, line := range strings.Split(s, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || k == "" {
				return req, fmt.Errorf("Environment: %q is not KEY=VALUE (one per line).", line)
			}
			req.Env[k] = v
		}
	}
	return req, nil
}

func (h *Handler) scaleInstallation(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	var fronts, backs *int
	for field, dst := range map[string]**int{"fronts": &fronts, "backs": &backs} {
		if s := strings.TrimSpace(r.PostFormValue(field)); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				h.redirectErr(w, r, rq, "/ui/installations", field+": a whole number")
				return
			}
			*dst = &n
		}
	}
	ctx, cancel := timeout(r)
	defer cancel()
	if _, err := rq.client.ScaleInstallation(ctx, name, fronts, backs); err != nil {
		h.redirectErr(w, r, rq, "/ui/installations", "Scaling "+name+" failed: "+err.Error())
		return
	}
	h.redirect(w, r, rq, "/ui/installations", "Installation "+name+" scaled.")
}

func (h *Handler) deleteInstallation(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	ctx, cancel := timeout(r)
	defer cancel()
	if err := rq.client.DeleteInstallation(ctx, name); err != nil {
		h.redirectErr(w, r, rq, "/ui/installations", "Deleting "+name+" failed: "+err.Error())
		return
	}
	h.redirect(w, r, rq, "/ui/installations", "Installation "+name+" deleted.")
}

// ---- Containers ----

func (h *Handler) containersPage(w http.ResponseWriter, r *http.Request, rq *request) {
	p := h.newPage(r, rq, "Containers", "containers")
	fragment, q := liveQuery(r)
	ctx, cancel := listCtx(r, q)
	defer cancel()
	cs, meta, err := rq.client.Containers(ctx, q)
	h.list(w, r, p, "containers", fragment, cs, meta, err, "/ui/containers")
}
