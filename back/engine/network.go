package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Installation networks. Every installation gets a bridge network of its own
// on each Back, so its containers share nothing with other installations'
// (Docker drops traffic between bridge networks) nor with other tenants of
// the engine. The bridge's interface is named BridgePrefix+hash so the host
// firewall (package hostfw) can keep every such interface away from the
// host with two rules, whatever networks come and go.
const (
	// BridgePrefix starts the host-side interface name of every installation
	// network ("pl-" + 12 hex digits, within Linux's 15 characters).
	BridgePrefix = "pl-"
	// DefaultSubnetBits is the size of one installation's subnet on one
	// Back: a /28 holds the gateway and 13 containers.
	DefaultSubnetBits = 28
)

// DefaultNetworkPool is where installation subnets are carved from: the
// benchmarking range (RFC 2544), which no real network routes, so it never
// hides a lender's LAN or the internet.
var DefaultNetworkPool = netip.MustParsePrefix("198.18.0.0/15")

// NetworkName is the Docker network of an installation on a host.
func NetworkName(host, installation string) string { return "potluck-" + host + "-" + installation }

func bridgeName(network string) string {
	sum := sha256.Sum256([]byte(network))
	return BridgePrefix + hex.EncodeToString(sum[:6])
}

// Network is an installation network as the engine reports it.
type Network struct {
	ID      string
	Name    string
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// ensureNetwork returns the host's network for installation, creating it
// when missing. A new network takes the first free subnet of the pool,
// starting from a place derived from its name, so Backs and other tenants
// sharing the engine rarely race for the same one; the engine refuses an
// overlapping subnet, which makes it the arbiter when they do.
func (e *Engine) ensureNetwork(ctx context.Context, host, installation string) (Network, error) {
	name := NetworkName(host, installation)
	if n, ok, err := e.findNetwork(ctx, name); err != nil || ok {
		return n, err
	}
	used, err := e.usedPrefixes(ctx)
	if err != nil {
		return Network{}, err
	}
	count := 1 << (e.subnetBits - e.pool.Bits())
	sum := sha256.Sum256([]byte(name))
	start := int(binary.BigEndian.Uint32(sum[:4]) % uint32(count))
	var lastErr error
	for i := range count {
		subnet := nthSubnet(e.pool, e.subnetBits, (start+i)%count)
		if overlapsAny(subnet, used) {
			continue
		}
		n, err := e.createNetwork(ctx, name, host, installation, subnet)
		if err == nil {
			e.log.Info("installation network created", "network", name, "subnet", subnet.String())
			return n, nil
		}
		if strings.Contains(err.Error(), "already exists") {
			if n, ok, ferr := e.findNetwork(ctx, name); ferr == nil && ok {
				return n, nil
			}
		}
		if !strings.Contains(strings.ToLower(err.Error()), "overlap") {
			return Network{}, fmt.Errorf("docker network create %s: %w", name, err)
		}
		lastErr = err // taken meanwhile: try the next one
		used = append(used, subnet)
	}
	return Network{}, fmt.Errorf("docker network create %s: no free /%d left in %s: %w", name, e.subnetBits, e.pool, lastErr)
}

func (e *Engine) createNetwork(ctx context.Context, name, host, installation string, subnet netip.Prefix) (Network, error) {
	gw := subnet.Addr().Next()
	no := false
	res, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver:     "bridge",
		EnableIPv6: &no,
		IPAM:       &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet, Gateway: gw}}},
		Options: map[string]string{
			"com.docker.network.bridge.name": bridgeName(name),
			// Published ports are reached through docker-proxy on loopback;
			// nothing needs the host's other addresses.
			"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1",
		},
		Labels: map[string]string{LabelManaged: "true", LabelHost: host, LabelInstallation: installation},
	})
	if err != nil {
		return Network{}, err
	}
	return Network{ID: res.ID, Name: name, Subnet: subnet, Gateway: gw}, nil
}

func (e *Engine) findNetwork(ctx context.Context, name string) (Network, bool, error) {
	nets, err := e.networks(ctx, client.Filters{}.Add("name", name).Add("label", LabelManaged+"=true"))
	if err != nil {
		return Network{}, false, err
	}
	for _, n := range nets {
		if n.Name == name { // the name filter matches substrings
			return n, true, nil
		}
	}
	return Network{}, false, nil
}

// usedPrefixes are the subnets of every network on the engine (whoever made
// it) and of the host's own interfaces.
func (e *Engine) usedPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker network ls: %w", err)
	}
	var used []netip.Prefix
	for _, n := range res.Items {
		for _, c := range n.IPAM.Config {
			if c.Subnet.IsValid() {
				used = append(used, c.Subnet.Masked())
			}
		}
	}
	// Addresses in the pool on the host itself (a test's network namespace
	// link, a VPN) would collide with a bridge; the engine is usually local.
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if p, err := netip.ParsePrefix(ipn.String()); err == nil {
					used = append(used, p.Masked())
				}
			}
		}
	}
	return used, nil
}

func nthSubnet(pool netip.Prefix, bits, n int) netip.Prefix {
	base := pool.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(base[:]) + uint32(n)<<(32-bits)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.PrefixFrom(netip.AddrFrom4(b), bits)
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// removeNetworkIfUnused removes an installation network once no container
// is attached to it. A network that is gone already is not an error.
func (e *Engine) removeNetworkIfUnused(ctx context.Context, name string) error {
	n, ok, err := e.findNetwork(ctx, name)
	if err != nil || !ok {
		return err
	}
	return e.removeIfUnused(ctx, n)
}

// removeIfUnused removes network n unless a container is attached to it.
func (e *Engine) removeIfUnused(ctx context.Context, n Network) error {
	insp, err := e.cli.NetworkInspect(ctx, n.ID, client.NetworkInspectOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("docker network inspect %s: %w", n.Name, err)
	}
	if len(insp.Network.Containers) > 0 {
		return nil
	}
	if _, err := e.cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("docker network rm %s: %w", n.Name, err)
	}
	e.log.Info("installation network removed", "network", n.Name)
	return nil
}

// Networks lists host's installation networks ("" for every host's).
func (e *Engine) Networks(ctx context.Context, host string) ([]Network, error) {
	return e.networks(ctx, managedBy(host))
}

func (e *Engine) networks(ctx context.Context, f client.Filters) ([]Network, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker network ls: %w", err)
	}
	var out []Network
	for _, n := range res.Items {
		nw := Network{ID: n.ID, Name: n.Name}
		if len(n.IPAM.Config) > 0 {
			nw.Subnet, nw.Gateway = n.IPAM.Config[0].Subnet, n.IPAM.Config[0].Gateway
		}
		out = append(out, nw)
	}
	return out, nil
}

// RemoveUnusedNetworks removes host's installation networks that no
// container uses (left by a Back that stopped between removing a container
// and its network).
func (e *Engine) RemoveUnusedNetworks(ctx context.Context, host string) error {
	nets, err := e.Networks(ctx, host)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nets {
		errs = append(errs, e.removeIfUnused(ctx, n))
	}
	return errors.Join(errs...)
}

// ValidateNetworkPool checks a pool and subnet size for UseNetworkPool; a
// command line calls it to refuse bad flags before it connects.
func ValidateNetworkPool(pool netip.Prefix, bits int) error {
	switch {
	case !pool.IsValid() || !pool.Addr().Is4():
		return fmt.Errorf("network pool %s: want an IPv4 prefix, e.g. %s", pool, DefaultNetworkPool)
	case bits < pool.Bits() || bits > 29:
		return fmt.Errorf("network pool %s: subnets of /%d do not fit (want /%d to /29)", pool, bits, pool.Bits())
	}
	return nil
}

// UseNetworkPool sets the prefix installation subnets are carved from and
// their size (default DefaultNetworkPool in /DefaultSubnetBits).
func (e *Engine) UseNetworkPool(pool netip.Prefix, bits int) error {
	if err := ValidateNetworkPool(pool, bits); err != nil {
		return err
	}
	e.pool, e.subnetBits = pool.Masked(), bits
	return nil
}
