package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// maxBody caps a POST body; the app is a sample, not a file store.
const maxBody = 1 << 20

// app is the handler; items is a bounded in-memory store.
type app struct {
	instance string
	limit    int

	mu    sync.Mutex
	next  int
	items []item
}

type item struct {
	ID       int               `json:"id"`
	Instance string            `json:"instance"`
	Data     map[string]string `json:"data"`
}

func newApp(instance string, limit int) http.Handler {
	a := &app{instance: instance, limit: limit}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /items", a.list)
	mux.HandleFunc("GET /burn", a.burn)
	mux.HandleFunc("GET /{$}", a.hello)
	mux.HandleFunc("POST /{$}", a.store)
	return mux
}

func (a *app) hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Instance", a.instance)
	fmt.Fprintf(w, "Hello from %s\n", a.instance)
}

// maxBurn bounds GET /burn's busy time.
const maxBurn = 100 * time.Millisecond

// burn keeps a CPU busy for ?ms= milliseconds of wall time (at most
// maxBurn) before answering: load that costs CPU, for the autoscaler's
// tests and demos.
func (a *app) burn(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "ms must be a number of milliseconds"})
		return
	}
	d := min(time.Duration(ms)*time.Millisecond, maxBurn)
	x := uint64(1)
	for start := time.Now(); time.Since(start) < d; {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	w.Header().Set("X-Instance", a.instance)
	fmt.Fprintf(w, "burnt %v on %s (%d)\n", d, a.instance, x%10)
}

func (a *app) store(w http.ResponseWriter, r *http.Request) {
	data, err := readBody(w, r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	a.mu.Lock()
	a.next++
	it := item{ID: a.next, Instance: a.instance, Data: data}
	a.items = append(a.items, it)
	if len(a.items) > a.limit {
		a.items = a.items[len(a.items)-a.limit:]
	}
	a.mu.Unlock()
	w.Header().Set("X-Instance", a.instance)
	writeJSON(w, http.StatusCreated, it)
}

func (a *app) list(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	items := append([]item(nil), a.items...)
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"instance": a.instance, "items": items})
}

// readBody accepts a JSON object of strings or an urlencoded/multipart form.
func readBody(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var data map[string]string
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&data); err != nil {
			return nil, fmt.Errorf("body must be a JSON object of strings: %w", err)
		}
		return data, nil
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			return nil, fmt.Errorf("bad form: %w", err)
		}
		data := make(map[string]string, len(r.PostForm))
		for k, v := range r.PostForm {
			data[k] = v[0]
		}
		return data, nil
	default:
		return nil, fmt.Errorf("content type %q: send application/json or a form", ct)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
