package chaos

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
)

// partitioner cuts nodes off from each other with iptables on loopback.
//
// All nodes share 127.0.0.1, so an address cannot say who sent a packet;
// each node runs under its own uid instead and the rules match the sending
// socket's owner in OUTPUT: a node's packets to the others' raft and API
// ports are dropped, and theirs to its ports. That cuts every connection
// between them in both directions (existing ones stall), while the test's
// clients (another uid) still reach every node, as in Jepsen's partitions.
// The rules live in a chain of this test's own, removed in close.
type partitioner struct {
	chain string
	nodes []*node
}

// newPartitioner creates the chain and hooks it into OUTPUT. It fails when
// iptables or its owner match is unavailable (not root, no iptables).
func newPartitioner(nodes []*node) (*partitioner, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("partitions need root (iptables, one uid per node)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return nil, fmt.Errorf("partitions need iptables: %w", err)
	}
	p := &partitioner{chain: fmt.Sprintf("POTLUCK-CHAOS-%d", os.Getpid()), nodes: nodes}
	if err := iptables("-N", p.chain); err != nil {
		return nil, err
	}
	if err := iptables("-I", "OUTPUT", "-j", p.chain); err != nil {
		iptables("-X", p.chain)
		return nil, err
	}
	// Prove the owner match works before relying on it.
	if err := iptables("-A", p.chain, "-p", "tcp", "-m", "owner", "--uid-owner", fmt.Sprint(nodes[0].uid),
		"-d", "127.0.0.1", "--dport", "9", "-j", "DROP"); err != nil {
		p.close()
		return nil, err
	}
	if err := p.heal(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func iptables(args ...string) error {
	out, err := exec.Command("iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func ports(n *node) string {
	_, h, _ := net.SplitHostPort(n.httpAddr)
	_, r, _ := net.SplitHostPort(n.raftAddr)
	return r + "," + h
}

// isolate cuts node from every other node (both directions).
func (p *partitioner) isolate(n *node) error {
	for _, o := range p.nodes {
		if o == n {
			continue
		}
		for _, pair := range [][2]*node{{n, o}, {o, n}} {
			from, to := pair[0], pair[1]
			err := iptables("-A", p.chain, "-p", "tcp", "-m", "owner", "--uid-owner", fmt.Sprint(from.uid),
				"-d", "127.0.0.1", "-m", "multiport", "--dports", ports(to), "-j", "DROP")
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// heal removes every rule.
func (p *partitioner) heal() error { return iptables("-F", p.chain) }

// close removes the chain and its hook; safe to call after a failure.
func (p *partitioner) close() error {
	err1 := iptables("-D", "OUTPUT", "-j", p.chain)
	err2 := iptables("-F", p.chain)
	err3 := iptables("-X", p.chain)
	if err1 != nil {
		return err1
	}
	if err2 != nil {
		return err2
	}
	return err3
}
