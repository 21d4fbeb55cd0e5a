package ui

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"

	"potluck/apiclient"
)

// Detail pages of an app (its versions and where each runs) and of a host
// (its instances, capacity, features and last heartbeat). The installation
// page is in installation.go.

// appDetail is an app's page.
type appDetail struct {
	App      *apiclient.App
	Versions []appVersion // newest first
	// Installations of this app, with the app version their live release
	// runs.
	Installations []apiclient.Installation
}

// appVersion is one version of an app with the installations whose live
// release runs it.
type appVersion struct {
	apiclient.AppVersion
	Latest  bool
	Running []string
}

func (h *Handler) appPage(w http.ResponseWriter, r *http.Request, rq *request) {
	name := r.PathValue("name")
	p := h.newPage(r, rq, "App "+name, "apps")
	ctx, cancel := timeout(r)
	defer cancel()
	app, err := rq.client.App(ctx, name)
	if err != nil {
		h.detailErr(w, r, rq, p, "app", false, err, fmt.Sprintf("There is no app %q (any more).", name))
		return
	}
	d := &appDetail{App: app}
	// The list answers what the token may see: an app owner's own
	// installations.
	is, _, err := rq.client.Installations(ctx, nil)
	if err != nil {
		p.Error = "Installations could not be listed: " + err.Error()
	}
	running := map[int][]string{}
	for _, in := range is {
		if in.App == name {
			d.Installations = append(d.Installations, in)
			running[max(in.AppVersion, 1)] = append(running[max(in.AppVersion, 1)], in.Name)
		}
	}
	versions := app.Versions
	if len(versions) == 0 { // an app from before versions: its one version
		versions = []apiclient.AppVersion{{Version: 1, Image: app.Image, Digest: app.Digest, Size: app.Size, ContainerPort: app.ContainerPort, CreatedAt: app.CreatedAt}}
	}
	for _, v := range versions {
		d.Versions = append(d.Versions, appVersion{AppVersion: v, Running: running[v.Version]})
	}
	sort.Slice(d.Versions, func(i, j int) bool { return d.Versions[i].Version > d.Versions[j].Version })
	d.Versions[0].Latest = true
	p.Data = d
	h.render(w, r, http.StatusOK, "app", p)
}

// detailErr answers a detail page (template tmpl) whose object could not be
// read: a live refresh gets the bare error; a page, the UI's not-found page
// with missing for a 404, else itself with the error.
func (h *Handler) detailErr(w http.ResponseWriter, r *http.Request, rq *request, p *page, tmpl string, fragment bool, err error, missing string) {
	switch {
	case fragment:
		http.Error(w, err.Error(), apiStatus(err))
	case apiclient.StatusOf(err) == http.StatusNotFound:
		h.notFound(w, r, rq, missing)
	default:
		p.Error = err.Error()
		h.render(w, r, apiStatus(err), tmpl, p)
	}
}

// hostDetail is a host's page.
type hostDetail struct {
	Host      *apiclient.Host
	Instances []apiclient.Instance
	Features  [][2]string // arch, storage, region, lender, then labels
	Used      apiclient.Resources
}

func (h *Handler) hostPage(w http.ResponseWriter, r *http.Request, rq *request) {
	ref := r.PathValue("id")
	p := h.newPage(r, rq, "Host "+ref, "hosts")
	fragment, q := liveQuery(r)
	q.Limit, q.Cursor = 0, "" // every instance, over all pages
	ctx, cancel := listCtx(r, q)
	defer cancel()
	// The containers first: a live refresh waits there for a change.
	cs, meta, err := rq.client.Containers(ctx, q)
	var host *apiclient.Host
	if err == nil {
		host, err = rq.client.Host(ctx, ref)
	}
	if err != nil {
		h.detailErr(w, r, rq, p, "host", fragment, err, fmt.Sprintf("There is no host %q.", ref))
		return
	}
	p.Title = "Host " + host.Name
	d := &hostDetail{Host: host}
	for _, c := range cs {
		if c.HostID == host.ID {
			d.Instances = append(d.Instances, c)
		}
	}
	sort.Slice(d.Instances, func(i, j int) bool {
		a, b := d.Instances[i], d.Instances[j]
		if a.Installation != b.Installation {
			return a.Installation < b.Installation
		}
		return a.ID < b.ID
	})
	for _, f := range [][2]string{{"arch", host.Arch}, {"storage", host.Storage}, {"region", host.Region}, {"lender", host.Lender}} {
		if f[1] != "" {
			d.Features = append(d.Features, f)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(host.Labels)) {
		d.Features = append(d.Features, [2]string{k, host.Labels[k]})
	}
	capacity := schedulable(host)
	d.Used = apiclient.Resources{MilliCPU: capacity.MilliCPU - host.Free.MilliCPU, MemoryMB: capacity.MemoryMB - host.Free.MemoryMB, DiskMB: capacity.DiskMB - host.Free.DiskMB}
	p.Data, p.Index, p.Live = d, meta.Index, "/ui/hosts/"+ref+"?fragment=1"
	if fragment {
		h.execute(w, r, http.StatusOK, "host", "table", p)
		return
	}
	h.render(w, r, http.StatusOK, "host", p)
}

// schedulable is what the core may place on a host: its declared capacity,
// capped by what its agent measured (fsm.Host.Schedulable).
func schedulable(h *apiclient.Host) apiclient.Resources {
	c := h.Capacity
	if m := h.Measured; m != nil {
		c = apiclient.Resources{MilliCPU: min(c.MilliCPU, m.MilliCPU), MemoryMB: min(c.MemoryMB, m.MemoryMB), DiskMB: min(c.DiskMB, m.DiskMB)}
	}
	return c
}
