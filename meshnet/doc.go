// Package meshnet joins Potluck hosts into an encrypted mesh with userspace
// WireGuard (wireguard-go over a gVisor netstack): no kernel module, no root,
// no routes installed on the host.
//
// A Node is one WireGuard device with one tunnel address. Peers are added,
// updated and removed at runtime as diffs. Traffic is dialled and accepted
// inside the node's own netstack (DialContext, Listen), and Forward exposes a
// tunnel port as a local TCP address to an allow-list of peers, which is how a
// Back publishes a container to the Fronts of its installation.
//
// Nodes behind NAT mark the peers they initiate to (Fronts and core nodes) as
// hubs: a hub gets a persistent keepalive and an active probe so the path comes
// back quickly after the hub restarts. A new peer whose first handshake was
// lost or crossed is re-initiated within a second instead of after
// WireGuard's 5 or 15 s retry (handshake.go). Allocator hands out tunnel addresses, and
// WANBind simulates delay, jitter and loss for tests and benchmarks.
//
// Packets move between WireGuard and the node's stack through tunLink, a
// batched link with TCP segmentation and receive offload; docs/meshnet.md
// ("The data path") explains it.
//
// The package imports nothing of Potluck's core, front or back.
package meshnet
