package procs

import (
	"fmt"
	"os"
	"strings"
)

// The Go runtime's system monitor (sysmon) sleeps deeply while every P is
// idle and is woken, through a futex, by the first system call after that;
// it then ticks every 20 µs for at least a millisecond before it sleeps
// again. A proxy serving one request at a time goes idle between requests,
// so each request paid that: about two futex calls, one or two sleeps and
// three context switches per process, on the request's path (a standalone
// Front made 5.0–5.3 context switches per lone request against NGINX's
// 2.2; the Front and Backs of the mesh path 16.1–16.5 between them).
//
// The runtime offers no switch for it but one: while GODEBUG's schedtrace
// is set, sysmon never sleeps deeply (it would miss its trace times).
// Set to the largest interval, the trace itself comes once every 24.8 days
// of uptime (a "SCHED" line on stderr), and an idle process's sysmon backs
// off to one tick every 10 ms. With it a lone request makes 2.2 context
// switches in a standalone Front and 6.1–6.2 on the mesh path
// (docs/benchmarks.md, "Session 9: the runtime's sysmon kept awake").
const sysmonAwake = "schedtrace=2147483647"

// withSysmonAwake returns GODEBUG's value with sysmonAwake added, and false
// when it already sets schedtrace (the operator's choice wins).
func withSysmonAwake(godebug string) (string, bool) {
	for _, kv := range strings.Split(godebug, ",") {
		if strings.HasPrefix(kv, "schedtrace=") {
			return godebug, false
		}
	}
	if godebug == "" {
		return sysmonAwake, true
	}
	return godebug + "," + sysmonAwake, true
}

// KeepSysmonAwake makes the process run with sysmon kept out of its deep
// sleep: the runtime reads GODEBUG's schedtrace only when it starts, so
// unless the environment sets it already, the process executes itself again
// (same PID, arguments and environment, plus the setting) and this call
// does not return. Call it first thing in main. It returns nil when nothing
// was needed, and an error, with the process going on as it is, when it
// cannot execute itself.
func KeepSysmonAwake() error {
	godebug, change := withSysmonAwake(os.Getenv("GODEBUG"))
	if !change {
		return nil
	}
	env := []string{"GODEBUG=" + godebug}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") { // the runtime reads the first
			env = append(env, kv)
		}
	}
	if err := reexec(env); err != nil {
		return fmt.Errorf("keep the runtime's system monitor awake: execute again with GODEBUG=%s: %w", godebug, err)
	}
	return nil
}
