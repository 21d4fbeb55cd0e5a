// Package workers runs a standalone Front the way NGINX runs: a master
// process opens the listening sockets, serves the admin endpoints and
// supervises worker processes, each serving the connections of its own
// sockets on a share of the cores.
//
// Why processes: one Go process serving many connections spreads each
// connection's work over all its threads, and a thread that runs out of work
// sleeps and must be woken for the next; on a machine whose cores are shared
// with the backends and the clients, the cores sit idle while those
// wake-ups are in flight (docs/benchmarks.md, "Session 9: with sysmon awake,
// and where the HTTP/1.1 gap is"). A worker with a few Ps of its own
// (Config.Procs) keeps its connections among its own threads, as an NGINX
// worker keeps them in its event loop.
//
// Each worker gets its own socket per listener (SO_REUSEPORT: the kernel
// spreads new connections over the sockets), and the master keeps every
// socket open, so connections that arrive for a worker that died wait in
// its socket's queue until the replacement accepts them instead of being
// refused. Per-worker state is what NGINX has without a shared zone:
// passive health (max_fails/fail_timeout), keep-alive pools and active
// probes are each worker's own; the master's /metrics merges the workers'
// metrics with a worker label.
//
// The master and its workers talk through the environment and inherited
// file descriptors (Inherit) and a private directory of Unix sockets for
// the workers' admin endpoints; nothing of it listens on the network.
package workers
