package hostfw

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/testenv"
)

// Ensure is idempotent: a second call adds nothing, and every rule is there.
// (What the rules achieve is proven by back/engine's TestInstallationsAreIsolated.)
func TestEnsureIsIdempotent(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "needs root for iptables")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		testenv.Missing(t, "no iptables")
	}
	if err := exec.Command("iptables", "-w", "5", "-S", "DOCKER-USER").Run(); err != nil {
		testenv.Missing(t, "no DOCKER-USER chain: dockerd is not running here")
	}
	f := &Firewall{Interfaces: "pl-+"}
	ctx := context.Background()
	require.NoError(t, f.Ensure(ctx))
	count := func() map[string]int {
		n := map[string]int{}
		for _, chain := range []string{"INPUT", "DOCKER-USER", ChainInput, ChainForward} {
			out, err := f.run(ctx, "-S", chain)
			require.NoError(t, err)
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "-A ") {
					n[line]++
				}
			}
		}
		return n
	}
	before := count()
	require.NoError(t, f.Ensure(ctx))
	require.Equal(t, before, count())
	for line, n := range before {
		if strings.Contains(line, "pl-+") || strings.Contains(line, "POTLUCK") {
			require.Equal(t, 1, n, "%s appears once", line)
		}
	}
	require.Contains(t, before, "-A INPUT -i pl-+ -j POTLUCK-INPUT")
	require.Contains(t, before, "-A DOCKER-USER -i pl-+ -j POTLUCK-FORWARD")
	require.Len(t, f.rules(), 5+len(PrivateRanges)+2)
}

func TestEnsureNeedsAnInterfacePattern(t *testing.T) {
	require.ErrorContains(t, (&Firewall{}).Ensure(context.Background()), "no interface pattern")
}

func TestMissingIptablesIsAClearError(t *testing.T) {
	err := (&Firewall{Interfaces: "pl-+", Iptables: "/nonexistent/iptables"}).Ensure(context.Background())
	require.ErrorContains(t, err, "host firewall")
	require.ErrorContains(t, err, "/nonexistent/iptables")
}
