package back

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"potluck/agentproto"
	"potluck/back/engine"
)

// serveLogs answers a core node's GET PathLogs{instance}: the container's
// log (what Docker's json-file driver keeps, rotated), streamed and flushed
// as it comes when following.
func (b *Back) serveLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var o engine.LogOptions
	o.Follow = q.Get("follow") == "true" || q.Get("follow") == "1"
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			http.Error(w, "since must be an RFC 3339 time", http.StatusBadRequest)
			return
		}
		o.Since = t
	}
	if s := q.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > agentproto.MaxLogTail {
			http.Error(w, "tail must be 0-"+strconv.Itoa(agentproto.MaxLogTail), http.StatusBadRequest)
			return
		}
		o.Tail = n
	}
	rc, err := b.engine.Logs(r.Context(), b.agent.Identity().HostID, r.PathValue("instance"), o)
	if errors.Is(err, engine.ErrNoContainer) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	copyFlushing(w, rc)
}

// copyFlushing copies src to w, flushing after every read so a follower
// sees each line as it is written.
func copyFlushing(w http.ResponseWriter, src io.Reader) {
	f, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}
