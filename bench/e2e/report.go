package e2e

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"potluck/bench/procstat"
)

// printSetup records what runs where, the tools' versions and the load.
func printSetup(cfg Config, r *rig) {
	nv, _ := exec.Command(cfg.Nginx, "-v").CombinedOutput()
	wv, _ := exec.Command(cfg.Wrk, "-v").CombinedOutput()
	out := cfg.Out
	fmt.Fprintf(out, "date: %s, %d CPUs, load average %s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), procstat.LoadAvg())
	fmt.Fprintf(out, "tools: %s, %s\n", strings.TrimSpace(string(nv)), firstLine(string(wv)))
	fronts := 1
	if cfg.MeshPipeline >= 0 {
		fronts = 2
	}
	fmt.Fprintf(out, "cluster: 1 potluck-core, %d potluck-front, 2 potluck-backs; each app on both Backs (sample app %g CPU, fast app %g CPU per container)\n", fronts, cfg.SampleCPUs, cfg.FastCPUs)
	fmt.Fprintf(out, "contenders: nginx and front-standalone proxy to the containers' published ports; front-mesh is the cluster's Front, through WireGuard to the Backs")
	if cfg.MeshPipeline >= 0 {
		fmt.Fprintf(out, "; %s a second Front with --pipeline %d", secondFront(cfg.MeshPipeline), cfg.MeshPipeline)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "CPU/req: the contender's processes (front-mesh: the Front and both Backs; Backs: their part); d-proxy: docker-proxy of the containers (%d processes); app: the containers; conns: tunnel connections the Backs accepted during the run\n", len(r.proxies))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
