package hostfw

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/testenv"
)

// Ensure is idempotent: a second call adds nothing, and every rule is there.
// (What the rules achieve is proven by back/engine's TestInstallationsAreIsolated.)
func TestEnsureIsIdempotent(t *testing.T) {
	requireIptables(t)
	f := &Firewall{Interfaces: "pl-+"}
	ctx := context.Background()
	require.NoError(t, f.Ensure(ctx))
	before := potluckRules(t, f)
	require.NoError(t, f.Ensure(ctx))
	require.Equal(t, before, potluckRules(t, f))
	requireEachOnce(t, before)
	require.Contains(t, before, "-A INPUT -i pl-+ -j POTLUCK-INPUT")
	require.Contains(t, before, "-A DOCKER-USER -i pl-+ -j POTLUCK-FORWARD")
	require.Len(t, f.rules(), 5+len(PrivateRanges)+2)
}

// TestEnsureRemovesRepeatedRules: copies two Backs added at once before the
// lock (found on a machine after make bench-e2e) go, the first of each
// stays, and the chain keeps its order.
func TestEnsureRemovesRepeatedRules(t *testing.T) {
	requireIptables(t)
	f := &Firewall{Interfaces: "pl-+"}
	ctx := context.Background()
	require.NoError(t, f.Ensure(ctx))
	want, err := f.run(ctx, "-S", ChainForward)
	require.NoError(t, err)
	established := []string{"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"}
	_, err = f.run(ctx, append([]string{"-A", ChainForward}, established...)...)
	require.NoError(t, err)
	_, err = f.run(ctx, "-I", "INPUT", "1", "-i", "pl-+", "-j", ChainInput)
	require.NoError(t, err)
	_, err = f.run(ctx, "-I", "DOCKER-USER", "1", "-i", "pl-+", "-j", ChainForward)
	require.NoError(t, err)

	require.NoError(t, f.Ensure(ctx))
	requireEachOnce(t, potluckRules(t, f))
	got, err := f.run(ctx, "-S", ChainForward)
	require.NoError(t, err)
	require.Equal(t, want, got, "the first copies stay, in order")
}

// TestConcurrentEnsuresAddEachRuleOnce: Backs starting together on one
// machine take turns. Before the lock between processes each found a
// missing rule missing and added it.
func TestConcurrentEnsuresAddEachRuleOnce(t *testing.T) {
	requireIptables(t)
	ctx := context.Background()
	require.NoError(t, (&Firewall{Interfaces: "pl-+"}).Ensure(ctx))
	for round := 0; round < 3; round++ {
		// One rule missing, as on a machine where none ran yet: the last
		// one, so every Ensure checks all the others first.
		f := &Firewall{Interfaces: "pl-+"}
		last := f.rules()[len(f.rules())-3]
		_, err := f.run(ctx, append([]string{"-D", last.chain}, last.args...)...)
		require.NoError(t, err)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = (&Firewall{Interfaces: "pl-+"}).Ensure(ctx) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
		requireEachOnce(t, potluckRules(t, f))
	}
}

func requireIptables(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root for iptables")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		testenv.Missing(t, "no iptables")
	}
	if err := exec.Command("iptables", "-w", "5", "-S", "DOCKER-USER").Run(); err != nil {
		testenv.Missing(t, "no DOCKER-USER chain: dockerd is not running here")
	}
}

// potluckRules counts the rules of the chains Ensure touches, by their
// iptables -S lines.
func potluckRules(t *testing.T, f *Firewall) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, chain := range chains {
		out, err := f.run(context.Background(), "-S", chain)
		require.NoError(t, err)
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "-A ") {
				n[line]++
			}
		}
	}
	return n
}

func requireEachOnce(t *testing.T, rules map[string]int) {
	t.Helper()
	for line, n := range rules {
		if strings.Contains(line, "pl-+") || strings.Contains(line, "POTLUCK") {
			require.Equal(t, 1, n, "%s appears once", line)
		}
	}
}

func TestEnsureNeedsAnInterfacePattern(t *testing.T) {
	require.ErrorContains(t, (&Firewall{}).Ensure(context.Background()), "no interface pattern")
}

func TestMissingIptablesIsAClearError(t *testing.T) {
	err := (&Firewall{Interfaces: "pl-+", Iptables: "/nonexistent/iptables"}).Ensure(context.Background())
	require.ErrorContains(t, err, "host firewall")
	require.ErrorContains(t, err, "/nonexistent/iptables")
}
