// Package debugpprof serves Go's runtime profiles on an agent's admin or
// metrics listener (--pprof): the CPU profile, the execution trace (what a
// lone request through the mesh waits for, docs/meshnet.md), the named
// profiles (heap, goroutine, ...) and symbols. Not the command line: it is
// nobody's business, even on a listener only the operator reaches.
package debugpprof

import (
	"net/http"
	"net/http/pprof"
)

// Register adds the profiles under /debug/pprof/ to mux.
func Register(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
