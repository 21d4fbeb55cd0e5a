package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"potluck/bench/nginxconf"
	"potluck/bench/procluster"
	"potluck/internal/freeport"
)

// app is one deployed installation: its domain and its containers'
// published addresses (the upstreams NGINX and the standalone Front use).
type app struct {
	name, domain string
	upstreams    []string
	appPIDs      []int // the containers' processes (each image runs one)
}

// child is a contender process the benchmark started itself.
type child struct {
	*procluster.Proc
	dir string // where its log (and NGINX's config) is
	// cleanup, if set, runs after the process has ended.
	cleanup func()
}

func startChild(dir, name, bin string, args ...string) (*child, error) {
	p := procluster.NewProc(name, bin, filepath.Join(dir, name+".log"), args...)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start %w", err)
	}
	return &child{Proc: p, dir: dir}, nil
}

// stop ends the process (NGINX's master takes its workers with it).
func (c *child) stop() {
	_ = c.Stop(10 * time.Second)
	if c.cleanup != nil {
		c.cleanup()
	}
}

// startNginx runs NGINX in front of every app's containers, configured as
// bench/nginxcmp does (fairly: worker_processes auto, upstream keepalive,
// the same forwarding headers potluck-front adds, no access log), with a
// server per domain; bodies of any size pass, buffered as NGINX does by
// default.
func startNginx(bin string, apps []app) (*child, string, error) {
	addr, err := freeport.TCP()
	if err != nil {
		return nil, "", err
	}
	// A directory of its own that NGINX's workers (nobody, when started by
	// root) can enter: they write buffered request bodies there.
	dir, err := os.MkdirTemp("", "potluck-bench-e2e-nginx-*")
	if err != nil {
		return nil, "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	sites := make([]nginxconf.Site, 0, len(apps))
	for _, a := range apps {
		sites = append(sites, nginxconf.Site{Name: a.domain, Listen: addr, Backends: a.upstreams, MaxBody: "0"})
	}
	conf := nginxconf.Config(dir, sites...)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	c, err := startChild(dir, "nginx", bin, "-p", dir, "-c", path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", err
	}
	c.cleanup = func() { os.RemoveAll(dir) }
	return c, addr, nil
}

// startStandalone runs potluck-front from a config file (no mesh) in front
// of the same containers, a route per domain.
func startStandalone(bin, dir string, apps []app) (*child, string, error) {
	addr, err := freeport.TCP()
	if err != nil {
		return nil, "", err
	}
	var routes strings.Builder
	for _, a := range apps {
		fmt.Fprintf(&routes, "  - hosts: [%q]\n    backends: [%s]\n", a.domain, strings.Join(a.upstreams, ", "))
	}
	conf := fmt.Sprintf("listen: [%q]\nadmin: \"\"\nmax_body_size: %q\nroutes:\n%s", addr, "1GiB", routes.String())
	path := filepath.Join(dir, "front-standalone.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, "", err
	}
	c, err := startChild(dir, "front-standalone", bin, "--config", path, "--log-level", "warn", "--watch-interval", "0")
	return c, addr, err
}
