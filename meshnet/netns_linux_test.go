//go:build linux

package meshnet

import (
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"

	"potluck/internal/testenv"
)

// netnsBind opens its UDP sockets inside a network namespace, whichever
// goroutine WireGuard calls Open from; once open, sockets stay in it.
type netnsBind struct {
	conn.Bind
	ns string // path under /var/run/netns
}

func (b *netnsBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, 0, err
	}
	defer unix.Close(orig)
	target, err := unix.Open(b.ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, 0, err
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, 0, fmt.Errorf("setns %s: %w", b.ns, err)
	}
	fns, actual, openErr := b.Bind.Open(port)
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with its goroutine instead of
		// serving others from the wrong namespace.
		return nil, 0, fmt.Errorf("restore netns: %w", err)
	}
	runtime.UnlockOSThread()
	return fns, actual, openErr
}

// requireNetns skips on a developer machine without root or the tools, and
// fails in CI, where the namespace tests must run.
func requireNetns(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	testenv.Missing(t, "network-namespace NAT test needs "+strings.Join(missing, ", ")+" (scripts/install-deps.sh installs the tools)")
}

func sh(t *testing.T, cmd string) {
	t.Helper()
	out, err := exec.Command("sh", "-ec", cmd).CombinedOutput()
	require.NoError(t, err, "%s\n%s", cmd, out)
}

// A real NAT: the NATed node sits behind a router doing MASQUERADE with a
// stateful firewall; the hub has no route to it. The hub learns the NATed
// endpoint (the router's address) and reaches the node's service through the
// tunnel.
//
//	hub ns: 198.18.0.1 -- router ns: 198.18.0.2 | 198.19.0.1 (MASQUERADE) -- nat ns: 198.19.0.2
func TestRealNATInNetworkNamespaces(t *testing.T) {
	requireNetns(t)
	id := fmt.Sprintf("%d", os.Getpid()%1000000)
	hubNS, routerNS, natNS := "plhub"+id, "plrtr"+id, "plnat"+id
	t.Cleanup(func() {
		for _, ns := range []string{hubNS, routerNS, natNS} {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	sh(t, fmt.Sprintf(`
		ip netns add %[1]s; ip netns add %[2]s; ip netns add %[3]s
		ip link add h0 netns %[1]s type veth peer name r0 netns %[2]s
		ip link add n0 netns %[3]s type veth peer name r1 netns %[2]s
		ip -n %[1]s addr add 198.18.0.1/24 dev h0
		ip -n %[2]s addr add 198.18.0.2/24 dev r0
		ip -n %[2]s addr add 198.19.0.1/24 dev r1
		ip -n %[3]s addr add 198.19.0.2/24 dev n0
		for ns in %[1]s %[2]s %[3]s; do ip -n $ns link set lo up; done
		ip -n %[1]s link set h0 up; ip -n %[2]s link set r0 up; ip -n %[2]s link set r1 up; ip -n %[3]s link set n0 up
		ip -n %[3]s route add default via 198.19.0.1
		ip netns exec %[2]s sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
		ip netns exec %[2]s iptables -t nat -A POSTROUTING -o r0 -j MASQUERADE
		ip netns exec %[2]s iptables -P FORWARD DROP
		ip netns exec %[2]s iptables -A FORWARD -i r1 -o r0 -j ACCEPT
		ip netns exec %[2]s iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
	`, hubNS, routerNS, natNS))

	newNSNode := func(ns, addr string, port uint16) *Node {
		n, err := New(Config{PrivateKey: mustKey(t), Address: netip.MustParseAddr(addr), ListenPort: port,
			Bind: &netnsBind{Bind: conn.NewDefaultBind(), ns: "/var/run/netns/" + ns}, DialTimeout: 3 * time.Second})
		require.NoError(t, err)
		t.Cleanup(func() { n.Close() })
		return n
	}
	hub := newNSNode(hubNS, "100.64.0.1", 51820)
	back := newNSNode(natNS, "100.64.1.1", 0)
	require.NoError(t, hub.UpsertPeer(Peer{PublicKey: back.PublicKey(), Address: back.Address()}))
	require.NoError(t, back.UpsertPeer(Peer{PublicKey: hub.PublicKey(), Address: hub.Address(),
		Endpoint: netip.MustParseAddrPort("198.18.0.1:51820"), Hub: true}))

	// The NATed host publishes a local service to the hub only.
	target, _ := localServer(t, "hello from behind the NAT")
	_, err := back.Forward(5000, target, []netip.Addr{hub.Address()})
	require.NoError(t, err)

	var body string
	require.Eventually(t, func() bool {
		c, err := hub.DialContext(ctxTimeout(t, 2*time.Second), "tcp", "100.64.1.1:5000")
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		body = string(b)
		return body != ""
	}, 20*time.Second, 200*time.Millisecond)
	require.Equal(t, "hello from behind the NAT", body)

	st, err := hub.Status()
	require.NoError(t, err)
	require.Len(t, st, 1)
	require.Equal(t, netip.MustParseAddr("198.18.0.2"), st[0].CurrentEndpoint.Addr(),
		"the hub sees the router's translated address, not the node's own 198.19.0.2")
	require.NotZero(t, st[0].RxBytes)
}
