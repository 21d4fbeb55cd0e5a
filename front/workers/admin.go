//go:build unix

package workers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"potluck/internal/debugpprof"
	"potluck/internal/jsonhttp"
	"potluck/lb/metrics"
)

// maxWorkerAdminBody bounds what the master reads from a worker's admin
// endpoint (a /metrics of many routes and backends is well under it).
const maxWorkerAdminBody = 32 << 20

// adminHandler serves the master's admin endpoints:
//
//	/metrics          the master's own metrics, then every worker's, merged, labelled worker="N"
//	/status           each worker's process and its own /status
//	/workers/N/...    worker N's admin endpoints (its /metrics, /status, /debug/pprof/)
func (m *Master) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", m.serveMetrics)
	mux.HandleFunc("/status", m.serveStatus)
	mux.HandleFunc("/workers/{n}/", m.serveWorker)
	if m.cfg.Pprof {
		debugpprof.Register(mux)
	}
	return mux
}

// fetchAll GETs path from every running worker at once; a worker that is
// not running or does not answer leaves nil and its error.
func (m *Master) fetchAll(ctx context.Context, path string) ([][]byte, []error) {
	bodies := make([][]byte, len(m.workers))
	errs := make([]error, len(m.workers))
	var wg sync.WaitGroup
	for i, w := range m.workers {
		if w.process() == nil {
			errs[i] = fmt.Errorf("worker %d is not running", i)
			continue
		}
		wg.Go(func() { bodies[i], errs[i] = m.fetch(ctx, i, path) })
	}
	wg.Wait()
	return bodies, errs
}

func (m *Master) fetch(ctx context.Context, i int, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+workerHost(i)+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", i, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWorkerAdminBody))
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", i, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("worker %d: %s %s", i, path, resp.Status)
	}
	return body, nil
}

func (m *Master) serveMetrics(w http.ResponseWriter, r *http.Request) {
	bodies, _ := m.fetchAll(r.Context(), "/metrics")
	var buf bytes.Buffer
	mw := metrics.NewWriter(&buf)
	mw.Gauge("potluck_front_workers", "Worker processes configured.", "", float64(len(m.workers)))
	for i, wk := range m.workers {
		l := metrics.Labels("worker", strconv.Itoa(i))
		up := 0.0
		if bodies[i] != nil {
			up = 1
		}
		mw.Gauge("potluck_front_worker_up", "1 if the worker runs and answered this scrape.", l, up)
		wk.mu.Lock()
		restarts := wk.restarts
		wk.mu.Unlock()
		mw.Counter("potluck_front_worker_restarts_total", "Times the worker was started again after it exited.", l, uint64(restarts))
	}
	mergeExpositions(&buf, bodies)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// workerStatus is one worker slot in the master's /status.
type workerStatus struct {
	Worker   int             `json:"worker"`
	Running  bool            `json:"running"`
	PID      int             `json:"pid,omitempty"`
	Started  time.Time       `json:"started,omitzero"`
	Restarts int             `json:"restarts"`
	LastExit string          `json:"last_exit,omitempty"`
	Status   json.RawMessage `json:"status,omitempty"` // the worker's own /status
	Error    string          `json:"error,omitempty"`  // why Status is missing
}

func (m *Master) serveStatus(w http.ResponseWriter, r *http.Request) {
	bodies, errs := m.fetchAll(r.Context(), "/status")
	out := struct {
		Workers []workerStatus `json:"workers"`
	}{}
	for i, wk := range m.workers {
		wk.mu.Lock()
		st := workerStatus{Worker: i, Running: wk.proc != nil, Restarts: wk.restarts, LastExit: wk.lastExit}
		if wk.proc != nil {
			st.PID, st.Started = wk.proc.Pid, wk.started
		}
		wk.mu.Unlock()
		if bodies[i] != nil && json.Valid(bodies[i]) {
			st.Status = bodies[i]
		} else if errs[i] != nil {
			st.Error = errs[i].Error()
		}
		out.Workers = append(out.Workers, st)
	}
	jsonhttp.WriteIndented(w, http.StatusOK, out)
}

func (m *Master) serveWorker(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n >= len(m.workers) {
		jsonhttp.WriteError(w, http.StatusNotFound, fmt.Sprintf("no worker %q: workers are numbered 0 to %d", r.PathValue("n"), len(m.workers)-1))
		return
	}
	prefix := "/workers/" + strconv.Itoa(n)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: workerHost(n)})
			pr.Out.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
			pr.Out.URL.RawPath = ""
		},
		Transport: m.client.Transport,
	}
	proxy.ServeHTTP(w, r)
}

// mergeExpositions appends the workers' Prometheus text expositions
// (parts[i] is worker i's; nil for none) to w as one: each metric family
// once, with its HELP and TYPE, followed by the samples of every worker,
// labelled worker="i".
func mergeExpositions(w *bytes.Buffer, parts [][]byte) {
	type family struct {
		help, typ string
		samples   []string
	}
	families := map[string]*family{}
	var order []string
	get := func(name string) *family {
		f := families[name]
		if f == nil {
			f = &family{}
			families[name] = f
			order = append(order, name)
		}
		return f
	}
	// familyOf maps a sample's name to its family: a histogram's
	// name_bucket, name_sum and name_count belong to name.
	familyOf := func(name string) string {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base, ok := strings.CutSuffix(name, suffix)
			if f := families[base]; ok && f != nil && (f.typ == "histogram" || f.typ == "summary") {
				return base
			}
		}
		return name
	}
	for i, part := range parts {
		label := `worker="` + strconv.Itoa(i) + `"`
		for line := range strings.Lines(string(part)) {
			line = strings.TrimRight(line, "\r\n")
			switch {
			case line == "":
			case strings.HasPrefix(line, "# HELP "):
				name, help, _ := strings.Cut(line[len("# HELP "):], " ")
				if f := get(name); f.help == "" {
					f.help = help
				}
			case strings.HasPrefix(line, "# TYPE "):
				name, typ, _ := strings.Cut(line[len("# TYPE "):], " ")
				get(name).typ = typ
			case strings.HasPrefix(line, "#"):
			default:
				end := strings.IndexAny(line, "{ ")
				if end <= 0 {
					continue // not a sample
				}
				name := line[:end]
				var sample string
				switch {
				case strings.HasPrefix(line[end:], "{}"):
					sample = name + "{" + label + line[end+1:]
				case line[end] == '{':
					sample = name + "{" + label + "," + line[end+1:]
				default:
					sample = name + "{" + label + "}" + line[end:]
				}
				f := get(familyOf(name))
				f.samples = append(f.samples, sample)
			}
		}
	}
	for _, name := range order {
		f := families[name]
		if len(f.samples) == 0 {
			continue
		}
		if f.help != "" {
			fmt.Fprintf(w, "# HELP %s %s\n", name, f.help)
		}
		if f.typ != "" {
			fmt.Fprintf(w, "# TYPE %s %s\n", name, f.typ)
		}
		for _, s := range f.samples {
			w.WriteString(s)
			w.WriteByte('\n')
		}
	}
}
