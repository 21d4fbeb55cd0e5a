package workers

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// The environment a master gives each worker. The listeners are the
// worker's file descriptors from 3 on, in the order of envListeners; the
// descriptor after them is a pipe holding the ticket secret.
const (
	envWorker    = "POTLUCK_FRONT_WORKER"           // the worker's index, from 0
	envListeners = "POTLUCK_FRONT_WORKER_LISTENERS" // "http,https,...": the kind of each inherited socket
	envAdmin     = "POTLUCK_FRONT_WORKER_ADMIN"     // Unix socket path for the worker's admin endpoints
	firstFD      = 3                                // what exec.Cmd.ExtraFiles[0] becomes
)

// Inherited is what a worker got from its master.
type Inherited struct {
	// Worker is the worker's index, from 0.
	Worker int
	// Listeners serve plain HTTP; TLSListeners HTTPS (the config's
	// listen and tls.listen, in order).
	Listeners, TLSListeners []net.Listener
	// Admin serves the worker's /metrics and /status to the master.
	Admin net.Listener
	// ticketSecret is what the session ticket keys derive from (TicketKeys).
	ticketSecret [ticketSecretSize]byte
}

// Close closes every listener.
func (in *Inherited) Close() {
	for _, ln := range append(append([]net.Listener{in.Admin}, in.Listeners...), in.TLSListeners...) {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// Inherit returns the sockets a master gave this process, and false when
// the process was not started as a worker. lookup is os.LookupEnv.
func Inherit(lookup func(string) (string, bool)) (*Inherited, bool, error) {
	idx, ok := lookup(envWorker)
	if !ok {
		return nil, false, nil
	}
	worker, err := strconv.Atoi(idx)
	if err != nil || worker < 0 {
		return nil, true, fmt.Errorf("%s=%q: not a worker index", envWorker, idx)
	}
	in := &Inherited{Worker: worker}
	kinds, _ := lookup(envListeners)
	for i, kind := range strings.Split(kinds, ",") {
		if kind == "" {
			continue
		}
		f := os.NewFile(uintptr(firstFD+i), "listener-"+kind)
		ln, err := net.FileListener(f)
		_ = f.Close() // FileListener holds a duplicate
		if err != nil {
			in.Close()
			return nil, true, fmt.Errorf("inherited %s listener (fd %d): %w", kind, firstFD+i, err)
		}
		switch kind {
		case kindHTTP:
			in.Listeners = append(in.Listeners, ln)
		case kindHTTPS:
			in.TLSListeners = append(in.TLSListeners, ln)
		default:
			_ = ln.Close()
			in.Close()
			return nil, true, fmt.Errorf("%s: unknown listener kind %q", envListeners, kind)
		}
	}
	n := len(in.Listeners) + len(in.TLSListeners)
	secret := os.NewFile(uintptr(firstFD+n), "ticket-secret")
	_, err = io.ReadFull(secret, in.ticketSecret[:])
	_ = secret.Close()
	if err != nil {
		in.Close()
		return nil, true, fmt.Errorf("ticket secret (fd %d): %w", firstFD+n, err)
	}
	// From here a SIGHUP must not kill the worker (Go's default): the
	// master sends it once the admin socket below exists, possibly before
	// the caller's own handler is installed. Such a signal is absorbed
	// here; the caller reads the config file after this anyway.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP)
	path, _ := lookup(envAdmin)
	if path == "" {
		in.Close()
		return nil, true, errors.New(envAdmin + " is not set")
	}
	_ = os.Remove(path) // a previous worker's socket
	in.Admin, err = net.Listen("unix", path)
	if err != nil {
		in.Close()
		return nil, true, fmt.Errorf("worker admin socket: %w", err)
	}
	return in, true, nil
}
