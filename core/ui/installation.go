package ui

import (
	"bytes"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"potluck/apiclient"
)

// MaxLogBytes bounds the log text an installation page shows.
const MaxLogBytes = 256 << 10

// installationDetail is an installation's page: its instances, releases,
// recent events and the tail of its logs.
type installationDetail struct {
	Inst     *apiclient.Installation
	Releases []apiclient.Release
	Events   []event
	Logs     string
	LogsErr  string
	Instance string // the instance whose logs are shown; "" for all
	// Autoscale is the installation's autoscaling (nil: unavailable, see
	// AutoscaleErr); Charts its metrics, drawn.
	Autoscale    *apiclient.AutoscaleStatus
	AutoscaleErr string
	Charts       []chart
	MetricsErr   string
	StepSeconds  float64
	Points       int
}

// event is a change the state records: a release's or an instance's last
// transition, or an autoscaling operation with its reason.
type event struct {
	At   time.Time
	What string
	Kind string // badge class
	Note string
}

func (h *Handler) installationPage(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p := h.newPage(r, rq, "Installation "+name, "installations")
	fragment, q := liveQuery(r)
	ctx, cancel := listCtx(r, q)
	defer cancel()
	in, meta, err := rq.client.Installation(ctx, name, q)
	if err != nil {
		h.detailErr(w, r, rq, p, "installation", fragment, err, fmt.Sprintf("There is no installation %q (any more).", name))
		return
	}
	d := &installationDetail{Inst: in, Instance: r.URL.Query().Get("instance")}
	d.Releases = append(d.Releases, in.Releases...)
	sort.Slice(d.Releases, func(i, j int) bool { return d.Releases[i].Version > d.Releases[j].Version })
	actx, acancel := timeout(r)
	if as, err := rq.client.Autoscale(actx, name); err == nil {
		d.Autoscale = as
	} else {
		d.AutoscaleErr = err.Error()
	}
	acancel()
	d.Events = events(in, d.Autoscale)
	if !fragment {
		mctx, mcancel := timeout(r)
		if m, err := rq.client.Metrics(mctx, name); err == nil {
			d.Charts, d.StepSeconds, d.Points = charts(m), m.StepSeconds, len(m.Points)
		} else {
			d.MetricsErr = err.Error()
		}
		mcancel()
		var buf bytes.Buffer
		lctx, lcancel := timeout(r)
		err := rq.client.Logs(lctx, name, apiclient.LogQuery{Instance: d.Instance, Tail: 50}, &limitedBuffer{buf: &buf, left: MaxLogBytes})
		lcancel()
		d.Logs = buf.String()
		if err != nil {
			d.LogsErr = err.Error()
		}
	}
	p.Data, p.Index, p.Live = d, meta.Index, "/ui/installations/"+name+"?fragment=1"
	if fragment {
		h.execute(w, r, http.StatusOK, "installation", "table", p)
		return
	}
	h.render(w, r, http.StatusOK, "installation", p)
}

func events(in *apiclient.Installation, as *apiclient.AutoscaleStatus) []event {
	var out []event
	if as != nil {
		for _, e := range as.Events {
			out = append(out, event{At: e.At, What: fmt.Sprintf("autoscaled %d → %d", e.From, e.To), Kind: "autoscale", Note: e.Source + ": " + e.Reason})
		}
	}
	for _, rel := range in.Releases {
		note := rel.Message
		if note == "" {
			note = rel.Description
		}
		out = append(out, event{At: rel.UpdatedAt, What: fmt.Sprintf("release %d %s", rel.Version, rel.Status), Kind: releaseBadge(rel.Status), Note: note})
	}
	for _, i := range in.Instances {
		out = append(out, event{At: i.UpdatedAt, What: fmt.Sprintf("instance %s on %s %s", i.ID, i.HostName, i.State), Kind: i.State, Note: i.Message})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].At.After(out[b].At) })
	if len(out) > 30 {
		out = out[:30]
	}
	return out
}

func releaseBadge(status string) string {
	switch status {
	case "live":
		return "running"
	case "deploying":
		return "pending"
	case "failed":
		return "failed"
	}
	return ""
}

// limitedBuffer keeps the first left bytes and drops the rest.
type limitedBuffer struct {
	buf  *bytes.Buffer
	left int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := min(len(p), l.left)
	l.buf.Write(p[:n])
	l.left -= n
	return len(p), nil
}

func (h *Handler) rollback(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	back := "/ui/installations/" + name
	version := 0
	if s := strings.TrimSpace(r.PostFormValue("version")); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			h.redirectErr(w, r, rq, back, "Rollback: the release is a number such as 2.")
			return
		}
		version = v
	}
	ctx, cancel := timeout(r)
	defer cancel()
	in, err := rq.client.Rollback(ctx, name, version)
	if err != nil {
		h.redirectErr(w, r, rq, back, "Rollback of "+name+" failed: "+err.Error())
		return
	}
	latest := 0
	for _, rel := range in.Releases {
		latest = max(latest, rel.Version)
	}
	h.redirect(w, r, rq, back, fmt.Sprintf("Release %d rolling out with the settings of release %d; the live release serves until it is healthy.", latest, max(version, 0)))
}

// setAutoscale handles the installation page's autoscaling form.
func (h *Handler) setAutoscale(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	back := "/ui/installations/" + name + "#autoscale"
	var req apiclient.AutoscaleRequest
	on := r.PostFormValue("enabled") == "on"
	req.Enabled = &on
	for _, f := range []struct {
		name string
		dst  **int
	}{{"min", &req.Min}, {"max", &req.Max}} { // in form order: the first bad one is named
		if s := strings.TrimSpace(r.PostFormValue(f.name)); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				h.redirectErr(w, r, rq, back, "Autoscaling: "+f.name+" is a whole number.")
				return
			}
			*f.dst = &n
		}
	}
	if s := strings.TrimSpace(r.PostFormValue("cpu_target")); s != "" {
		f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil {
			h.redirectErr(w, r, rq, back, "Autoscaling: the CPU target is a percentage such as 75.")
			return
		}
		f /= 100
		req.CPUTarget = &f
	}
	if s := strings.TrimSpace(r.PostFormValue("interval")); s != "" {
		req.Interval = &s
	}
	if s := strings.TrimSpace(r.PostFormValue("policy")); s != "" {
		req.Policy = &s
	}
	ctx, cancel := timeout(r)
	defer cancel()
	if _, err := rq.client.SetAutoscale(ctx, name, req); err != nil {
		h.redirectErr(w, r, rq, back, "Autoscaling of "+name+" not changed: "+err.Error())
		return
	}
	state := "off"
	if on {
		state = "on"
	}
	h.redirect(w, r, rq, back, "Autoscaling of "+name+" is "+state+".")
}

// notFound answers a page that does not exist with the UI's own layout.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, rq *request, msg string) {
	p := &page{Title: "Not found", Error: msg}
	if rq != nil {
		p.CSRF = rq.se.csrf
	}
	h.render(w, r, http.StatusNotFound, "notfound", p)
}
