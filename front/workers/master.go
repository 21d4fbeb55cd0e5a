//go:build unix

package workers

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Listener is one address the Front serves.
type Listener struct {
	Addr string
	TLS  bool // HTTPS (the config's tls.listen)
}

const (
	kindHTTP  = "http"
	kindHTTPS = "https"
)

func (l Listener) kind() string {
	if l.TLS {
		return kindHTTPS
	}
	return kindHTTP
}

// Config configures a master.
type Config struct {
	// Workers is how many worker processes run (at least 1).
	Workers int
	// Listeners are the addresses every worker serves.
	Listeners []Listener
	// Admin is the master's admin listen address ("" for none): the
	// workers' /metrics merged, their /status, and /workers/N/ proxied to
	// worker N's own admin endpoints.
	Admin string
	// Pprof also serves the master's /debug/pprof/ on Admin.
	Pprof bool
	// Command returns a new command line for a worker (the Front's own
	// binary and arguments). The master adds the sockets and the
	// environment that make it a worker; a nil Env means os.Environ().
	Command func() *exec.Cmd
	// Procs is each worker's GOMAXPROCS (0: the cores shared out among the
	// workers, at least 2). A GOMAXPROCS in the environment wins.
	//
	// Why at least 2: a process at one P loses it to another thread
	// whenever a system call outlasts sysmon's tick (20 µs; a loopback write
	// runs the receiver's TCP stack, about 10 µs and often more), and wakes
	// a thread to take it. Over TLS, two workers at 2 Ps each served
	// 1.04–1.11× NGINX's HTTP/1.1 rate where two at 1 P served 0.93–0.98×,
	// with fewer context switches per request (0.28–0.30 against 0.36–0.42;
	// docs/benchmarks.md, "Session 10: worker processes").
	Procs int
	// ShutdownTimeout is how long workers may drain before they are killed
	// (plus a grace of 5s for their own exit).
	ShutdownTimeout time.Duration
	// Reload, if set, runs on SIGHUP before the workers get the signal;
	// when it fails the workers are not told (they would refuse the file
	// too, each logging why).
	Reload func() error
	Logger *slog.Logger
}

// Master holds the sockets and supervises the workers.
type Master struct {
	cfg     Config
	log     *slog.Logger
	dir     string // private directory of the workers' admin sockets
	sockets []*socketSet
	admin   *http.Server
	adminLn net.Listener
	workers []*worker
	client  *http.Client // to the workers' admin sockets
	// ticketSecret is given to every worker (TicketKeys).
	ticketSecret [ticketSecretSize]byte
}

// worker is one worker slot: the process in it changes on every restart.
type worker struct {
	index int

	mu       sync.Mutex
	proc     *os.Process // nil while not running
	started  time.Time
	restarts int
	lastExit string
}

// Start opens every socket (one per listener and worker) and the admin
// listener. Nothing runs until Run.
func Start(cfg Config) (*Master, error) {
	if cfg.Workers < 1 {
		return nil, fmt.Errorf("workers: %d is fewer than one", cfg.Workers)
	}
	if cfg.Command == nil {
		return nil, errors.New("workers: no command")
	}
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, 30*time.Second)
	cfg.Procs = cmp.Or(cfg.Procs, max(2, runtime.NumCPU()/cfg.Workers))
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Master{cfg: cfg, log: cfg.Logger}
	if _, err := rand.Read(m.ticketSecret[:]); err != nil {
		return nil, fmt.Errorf("workers: ticket secret: %w", err)
	}
	dir, err := os.MkdirTemp("", "potluck-front-")
	if err != nil {
		return nil, fmt.Errorf("workers: admin socket directory: %w", err)
	}
	m.dir = dir // MkdirTemp makes it 0700: only this user reaches the workers
	m.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			var d net.Dialer
			return d.DialContext(ctx, "unix", filepath.Join(dir, host+".sock"))
		},
		MaxIdleConnsPerHost: 1,
	}}
	for _, l := range cfg.Listeners {
		s, err := openSockets(l, cfg.Workers)
		if err != nil {
			m.close()
			return nil, err
		}
		m.sockets = append(m.sockets, s)
	}
	for i := range cfg.Workers {
		m.workers = append(m.workers, &worker{index: i})
	}
	if cfg.Admin != "" {
		ln, err := net.Listen("tcp", cfg.Admin)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("admin listen %s: %w", cfg.Admin, err)
		}
		m.adminLn = ln
		m.admin = &http.Server{Handler: m.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	return m, nil
}

// Run starts the workers, restarts any that exits, passes SIGHUP on to
// them, and when ctx ends stops them (SIGTERM: they drain) and returns.
func (m *Master) Run(ctx context.Context) {
	defer m.close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if m.admin != nil {
		go func() {
			if err := m.admin.Serve(m.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error("admin listener stopped", "err", err)
			}
		}()
		m.log.Info("admin listening", "addr", m.adminLn.Addr().String())
	}
	for _, s := range m.sockets {
		m.log.Info("listening", "addr", s.addr.String(), "kind", s.listener.kind(), "workers", m.cfg.Workers)
	}
	var wg sync.WaitGroup
	for _, w := range m.workers {
		wg.Go(func() { m.supervise(ctx, w) })
	}
	for {
		select {
		case <-ctx.Done():
			m.log.Info("shutting down: stopping the workers", "timeout", m.cfg.ShutdownTimeout)
			wg.Wait()
			if m.admin != nil {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = m.admin.Shutdown(sctx)
				cancel()
			}
			return
		case <-hup:
			m.reload()
		}
	}
}

func (m *Master) reload() {
	if m.cfg.Reload != nil {
		if err := m.cfg.Reload(); err != nil {
			m.log.Error("SIGHUP: config refused; the workers keep serving the previous one", "err", err)
			return
		}
	}
	m.log.Info("SIGHUP: workers reloading")
	for _, w := range m.workers {
		// A worker whose admin socket is not there yet is starting: it has
		// no handler for the signal yet and reads the file anyway.
		if p := w.process(); p != nil && m.workerReady(w.index) {
			_ = p.Signal(syscall.SIGHUP)
		}
	}
}

// Restart backoff: a worker that ran this long is restarted at once;
// one that died sooner waits, twice as long each time, up to maxBackoff,
// so a worker that cannot start does not spin.
const (
	stableRun  = 10 * time.Second
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// nextBackoff is the wait before restarting a worker that ran for ran,
// given the previous wait.
func nextBackoff(prev, ran time.Duration) time.Duration {
	if ran >= stableRun {
		return 0
	}
	return min(max(2*prev, minBackoff), maxBackoff)
}

// supervise keeps worker w running until ctx ends.
func (m *Master) supervise(ctx context.Context, w *worker) {
	var backoff time.Duration
	for {
		start := time.Now()
		cmd, err := m.start(w)
		var exit error
		if err != nil {
			exit = err
		} else {
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case exit = <-done:
			case <-ctx.Done():
				m.stop(w, cmd, done)
				return
			}
		}
		ran := time.Since(start)
		backoff = nextBackoff(backoff, ran)
		w.exited(exit)
		if ctx.Err() != nil {
			return
		}
		w.restarted()
		m.log.Warn("worker exited; restarting", "worker", w.index, "exit", describeExit(exit),
			"ran", ran.Round(time.Millisecond), "restart_in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
	}
}

// start starts a process in worker slot w.
func (m *Master) start(w *worker) (*exec.Cmd, error) {
	cmd := m.cfg.Command()
	kinds := make([]string, len(m.sockets))
	for i, s := range m.sockets {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.files[w.index])
		kinds[i] = s.listener.kind()
	}
	// The secret goes through a pipe, never the environment or a file.
	secret, err := secretPipe(m.ticketSecret[:])
	if err != nil {
		return nil, fmt.Errorf("start worker %d: %w", w.index, err)
	}
	defer secret.Close() // the worker holds its own copy once started
	cmd.ExtraFiles = append(cmd.ExtraFiles, secret)
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	env = append(slices.Clip(env),
		envWorker+"="+strconv.Itoa(w.index),
		envListeners+"="+strings.Join(kinds, ","),
		envAdmin+"="+m.adminSocket(w.index))
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") }) {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(m.cfg.Procs))
	}
	cmd.Env = env
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	setParentDeathSignal(cmd)
	_ = os.Remove(m.adminSocket(w.index)) // the previous worker's: not ready until the new one makes it
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %d: %w", w.index, err)
	}
	w.mu.Lock()
	w.proc, w.started = cmd.Process, time.Now()
	w.mu.Unlock()
	m.log.Debug("worker started", "worker", w.index, "pid", cmd.Process.Pid)
	return cmd, nil
}

// stop asks a worker to drain and exit, and kills it if it has not after
// the shutdown timeout and a grace.
func (m *Master) stop(w *worker, cmd *exec.Cmd, done <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(m.cfg.ShutdownTimeout + 5*time.Second)
	defer t.Stop()
	select {
	case err := <-done:
		w.exited(err)
	case <-t.C:
		m.log.Warn("worker did not stop in time; killing it", "worker", w.index, "pid", cmd.Process.Pid)
		_ = cmd.Process.Kill()
		w.exited(<-done)
	}
}

// secretPipe returns the read end of a pipe that holds b (a pipe's buffer
// holds far more than a secret, so the write does not block).
func secretPipe(b []byte) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_, err = w.Write(b)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// workerReady says whether worker i got far enough to take SIGHUP: it
// creates its admin socket after it handles the signal (Inherit), and
// start removes the previous worker's.
func (m *Master) workerReady(i int) bool {
	_, err := os.Stat(m.adminSocket(i))
	return err == nil
}

func (m *Master) adminSocket(i int) string {
	return filepath.Join(m.dir, workerHost(i)+".sock")
}

// workerHost names worker i in URLs to its admin socket.
func workerHost(i int) string { return "worker-" + strconv.Itoa(i) }

func (m *Master) close() {
	for _, s := range m.sockets {
		s.close()
	}
	if m.adminLn != nil {
		_ = m.adminLn.Close()
	}
	if m.dir != "" {
		_ = os.RemoveAll(m.dir)
	}
}

func (w *worker) process() *os.Process {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.proc
}

// exited records that the slot's process ended (or never started).
func (w *worker) exited(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.proc, w.lastExit = nil, describeExit(err)
}

func (w *worker) restarted() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.restarts++
}

// describeExit says how a worker ended, for logs and /status.
func describeExit(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String() // "exit status 1", "signal: killed"
	default:
		return err.Error()
	}
}
