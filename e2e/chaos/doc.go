// Package chaos checks that the core's public API is linearizable while
// nodes crash, pause and lose the network, in the spirit of Jepsen: concurrent
// clients create, read and delete apps through the /v1 API of a 3-node
// cluster of real potluck-core processes while a nemesis kills (-9), pauses
// (SIGSTOP/SIGCONT) and partitions nodes (iptables on loopback); the recorded
// history is checked with porcupine against a model of the API.
//
// Everything lives in the tests: `go test ./e2e/chaos/` runs a short
// version, `make chaos` a long one (CHAOS_DURATION) that prints the
// operations, the faults injected and the verdict. docs/operations.md
// explains how to run it and read its output.
package chaos
