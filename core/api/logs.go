package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"potluck/agentproto"
	"potluck/core/fsm"
)

// Log requests.
const (
	DefaultLogTail = 100              // lines per instance when neither tail nor since is given
	MaxLogLine     = 16 << 10         // longer lines are cut
	maxLogFollow   = 24 * time.Hour   // a follow ends after this, the client may reconnect
	logDialTimeout = 10 * time.Second // to reach a Back's log over the mesh
)

// LogSource opens an instance's log on its Back over the mesh (query:
// follow, since, tail as agentproto.PathLogs takes them).
type LogSource func(ctx context.Context, host *fsm.Host, instance string, q url.Values) (io.ReadCloser, error)

// getLogs streams the logs of an installation's instances as text lines
// "INSTANCE TIMESTAMP TEXT": GET /v1/installations/{name}/logs?follow=true&
// instance=ID&since=10m|RFC3339&tail=N. Answered by the node that receives
// it, from its own state: logs are not replicated state.
func (s *Server) getLogs(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Logs == nil {
		writeError(w, http.StatusNotImplemented, "logs are not served by this node")
		return
	}
	name := r.PathValue("name")
	q := r.URL.Query()
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	back := url.Values{}
	if follow {
		back.Set("follow", "true")
	}
	if v := q.Get("since"); v != "" {
		t, err := parseSince(v, s.cfg.Now())
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		back.Set("since", t.UTC().Format(time.RFC3339Nano))
	}
	tail := DefaultLogTail
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > agentproto.MaxLogTail {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("tail must be 0-%d (0: all the Back keeps)", agentproto.MaxLogTail))
			return
		}
		tail = n
	} else if back.Has("since") {
		tail = 0
	}
	if tail > 0 {
		back.Set("tail", strconv.Itoa(tail))
	}
	st := s.node.State()
	if s.installation(w, st, name) == nil {
		return
	}
	var targets []*fsm.Instance
	for _, in := range st.InstancesOf(name) {
		if id := q.Get("instance"); id == "" || id == in.ID {
			targets = append(targets, in)
		}
	}
	if id := q.Get("instance"); id != "" && len(targets) == 0 {
		s.notFound(w, fmt.Sprintf("installation %q has no instance %q", name, id))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), maxLogFollow)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := &lineWriter{w: w}
	if !follow {
		for _, in := range targets {
			s.copyLog(ctx, st, in, back, out)
		}
		return
	}
	var wg sync.WaitGroup
	for _, in := range targets {
		wg.Go(func() { s.copyLog(ctx, st, in, back, out) })
	}
	wg.Wait()
}

// copyLog writes one instance's log lines to out, prefixed with its id.
func (s *Server) copyLog(ctx context.Context, st *fsm.State, in *fsm.Instance, q url.Values, out *lineWriter) {
	h := st.Hosts[in.HostID]
	if h == nil {
		out.line(in.ID, "[potluck] its host is gone")
		return
	}
	rc, err := s.cfg.Logs(ctx, h, in.ID, q)
	if err != nil {
		if ctx.Err() == nil {
			out.line(in.ID, fmt.Sprintf("[potluck] logs unavailable from %s: %v", h.Name, err))
		}
		return
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, MaxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := string(line)
			if errors.Is(err, bufio.ErrBufferFull) {
				text += " [cut]"
				// Skip the rest of the overlong line.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
			}
			out.line(in.ID, strings.TrimRight(text, "\r\n"))
		}
		if err != nil {
			return
		}
	}
}

// lineWriter writes whole lines from several goroutines and flushes each.
type lineWriter struct {
	mu sync.Mutex
	w  http.ResponseWriter
}

func (l *lineWriter) line(instance, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.w, instance+" "+text+"\n")
	if f, ok := l.w.(http.Flusher); ok {
		f.Flush()
	}
}

// parseSince reads since= as a duration back from now ("10m") or an RFC
// 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("since must be a duration such as 10m or an RFC 3339 time")
}
