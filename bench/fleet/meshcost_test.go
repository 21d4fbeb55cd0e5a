package fleet

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"potluck/meshnet"
)

// BenchmarkMeshnetNodeCost measures what one more simulated host would cost
// if each ran its own meshnet node in the bench process (the alternative to
// the bench agent listener): heap and goroutines of an idle node with one
// hub peer, no traffic. Run: go test -run '^$' -bench MeshnetNodeCost ./bench/fleet/
func BenchmarkMeshnetNodeCost(b *testing.B) {
	const nodes = 50
	hubKey, err := meshnet.GeneratePrivateKey()
	if err != nil {
		b.Fatal(err)
	}
	hub := meshnet.Peer{PublicKey: hubKey.Public(), Address: netip.MustParseAddr("100.64.0.1"), Endpoint: netip.MustParseAddrPort("127.0.0.1:9")}
	for b.Loop() {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		g0 := runtime.NumGoroutine()
		start := time.Now()
		var list []*meshnet.Node
		for i := range nodes {
			k, err := meshnet.GeneratePrivateKey()
			if err != nil {
				b.Fatal(err)
			}
			n, err := meshnet.New(meshnet.Config{PrivateKey: k, Address: netip.AddrFrom4([4]byte{100, 64, 1, byte(i + 1)})})
			if err != nil {
				b.Fatal(err)
			}
			if err := n.SetPeers([]meshnet.Peer{hub}); err != nil {
				b.Fatal(err)
			}
			list = append(list, n)
		}
		elapsed := time.Since(start)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/nodes/(1<<20), "MiB-heap/node")
		b.ReportMetric(float64(after.Sys-before.Sys)/nodes/(1<<20), "MiB-sys/node")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/nodes, "goroutines/node")
		b.ReportMetric(float64(elapsed.Microseconds())/nodes/1000, "ms-start/node")
		for _, n := range list {
			_ = n.Close()
		}
	}
}
