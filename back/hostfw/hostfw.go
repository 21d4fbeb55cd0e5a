// Package hostfw keeps app containers away from the machine they run on.
// Docker already drops traffic between bridge networks, but a container
// reaches every address of its own host (the bridge gateway and all
// others) and, through the host's routing, the lender's LAN. Ensure installs
// iptables rules matched on the interface names of installation networks
// (engine.BridgePrefix), so they hold for every installation network,
// present and future, without per-network churn:
//
//	INPUT       -i pl+ -j POTLUCK-INPUT      (first rule)
//	DOCKER-USER -i pl+ -j POTLUCK-FORWARD    (first rule)
//	POTLUCK-INPUT:   established/related RETURN; everything else REJECT
//	POTLUCK-FORWARD: established/related RETURN; to another pl+ RETURN
//	                 (Docker's isolation decides); to private, link-local,
//	                 CGNAT and benchmarking ranges REJECT
//
// Replies to connections the host opens (docker-proxy relaying a published
// port, the Back's readiness checks) are established and pass. Egress to the
// internet is kept: web apps call APIs, fetch certificates and send mail.
// DNS works: Docker's resolver answers inside the container's namespace.
// The rules only match pl+ interfaces, so they are inert on a host without
// installation networks; they are left in place when the Back stops, since
// its containers keep running.
package hostfw

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Chains Potluck owns.
const (
	ChainInput   = "POTLUCK-INPUT"
	ChainForward = "POTLUCK-FORWARD"
)

// PrivateRanges are destinations containers may not reach: the lender's LAN
// and the host's other networks (RFC 1918), link-local (cloud metadata
// services), carrier-grade NAT (also the mesh's range) and the benchmarking
// range the installation networks live in.
var PrivateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "198.18.0.0/15"}

// Firewall installs the rules with one iptables binary.
type Firewall struct {
	// Iptables is the iptables command; "" means "iptables" on PATH. It
	// must be the one dockerd uses (legacy or nft), as Debian's alternatives
	// arrange.
	Iptables string
	// Interfaces is the interface pattern to match, e.g. "pl+".
	Interfaces string

	mu sync.Mutex
}

// lockPath is where Ensure takes its turn between processes: the Backs of
// one machine (several may share an engine) check and change the rules
// one at a time, or two of them starting together both find a rule missing
// and both add it. A Back that may not write /run (run as a user with
// CAP_NET_ADMIN) uses the same name in the temporary directory.
const lockPath = "/run/potluck-hostfw.lock"

// chains are those Ensure changes: Potluck's own and the two it jumps from.
var chains = []string{"INPUT", "DOCKER-USER", ChainInput, ChainForward}

// rule is one iptables rule: its chain, and the rest of its arguments.
type rule struct {
	chain string
	args  []string
	first bool // insert at the head of the chain rather than append
}

func (f *Firewall) rules() []rule {
	ifs := f.Interfaces
	rs := []rule{
		{chain: ChainInput, args: []string{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"}},
		{chain: ChainInput, args: []string{"-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"}},
		{chain: ChainInput, args: []string{"-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}},
		{chain: ChainForward, args: []string{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"}},
		{chain: ChainForward, args: []string{"-o", ifs, "-j", "RETURN"}},
	}
	for _, p := range PrivateRanges {
		rs = append(rs, rule{chain: ChainForward, args: []string{"-d", p, "-j", "REJECT", "--reject-with", "icmp-admin-prohibited"}})
	}
	return append(rs,
		rule{chain: "INPUT", args: []string{"-i", ifs, "-j", ChainInput}, first: true},
		rule{chain: "DOCKER-USER", args: []string{"-i", ifs, "-j", ChainForward}, first: true},
	)
}

// Ensure creates the chains and adds whichever rules are missing; rules
// already there are left alone, so it is cheap to call again (dockerd
// recreates DOCKER-USER when it restarts on a rebooted host). It removes
// repeated copies of Potluck's rules, which Backs that added rules at the
// same moment (before Ensure took turns between processes) could leave.
func (f *Firewall) Ensure(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Interfaces == "" {
		return errors.New("host firewall: no interface pattern")
	}
	// Without its turn (no lock file could be made, or another Back held it
	// past lockWait) Ensure still adds what is missing, maybe twice; it
	// only removes repeats, by rule number, while no other Back can change
	// the chains: the next Ensure with its turn does.
	unlock, err := lockFile(ctx, lockPath)
	locked := err == nil
	if locked {
		defer unlock()
	}
	if _, err := f.run(ctx, "-S", "DOCKER-USER"); err != nil {
		return fmt.Errorf("host firewall: %w (is dockerd running with its iptables rules on this machine?)", err)
	}
	for _, chain := range []string{ChainInput, ChainForward} {
		if _, err := f.run(ctx, "-S", chain); err != nil {
			if _, err := f.run(ctx, "-N", chain); err != nil {
				return fmt.Errorf("host firewall: %w", err)
			}
		}
	}
	for _, r := range f.rules() {
		if _, err := f.run(ctx, append([]string{"-C", r.chain}, r.args...)...); err == nil {
			continue
		}
		op := []string{"-A", r.chain}
		if r.first {
			op = []string{"-I", r.chain, "1"}
		}
		if _, err := f.run(ctx, append(op, r.args...)...); err != nil {
			return fmt.Errorf("host firewall: %w", err)
		}
	}
	if !locked {
		return nil
	}
	return f.dedupe(ctx)
}

// dedupe deletes every copy of a Potluck rule after its first: all of its
// own chains' repeats, and repeated jumps to them in INPUT and DOCKER-USER
// (other rules there are not Potluck's). Keeping the first copies keeps
// the order: a process appended a chain's rules one after another, each
// only once the one before it was in the chain.
func (f *Firewall) dedupe(ctx context.Context) error {
	for _, chain := range chains {
		out, err := f.run(ctx, "-S", chain)
		if err != nil {
			return fmt.Errorf("host firewall: %w", err)
		}
		own := chain == ChainInput || chain == ChainForward
		var rules []string // -A lines, rule number i+1
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "-A ") {
				rules = append(rules, strings.TrimSpace(line))
			}
		}
		for i := len(rules) - 1; i > 0; i-- { // from the end: numbers before i stay
			ours := own || strings.Contains(rules[i], " -j "+ChainInput) || strings.Contains(rules[i], " -j "+ChainForward)
			if ours && slices.Contains(rules[:i], rules[i]) {
				if _, err := f.run(ctx, "-D", chain, strconv.Itoa(i+1)); err != nil {
					return fmt.Errorf("host firewall: removing a repeated rule: %w", err)
				}
			}
		}
	}
	return nil
}

func (f *Firewall) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	bin := f.Iptables
	if bin == "" {
		bin = "iptables"
	}
	// -w: wait for the xtables lock dockerd may hold.
	out, err := exec.CommandContext(ctx, bin, append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
