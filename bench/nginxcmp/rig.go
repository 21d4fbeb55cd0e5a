package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"potluck/internal/freeport"
)

// rig is everything the rounds measure: the backends and the contenders in
// front of them, each a process of its own.
type rig struct {
	backendPIDs []int
	// contenders in the order of the first round: nginx, potluck-front, then
	// potluck-pipe and fasthttp-raw when enabled.
	contenders []string
	pids       map[string]int    // contender → process id (NGINX's master)
	targets    map[string]string // contender → listen address
	// admin listeners of the two potluck-front processes, for --profile.
	frontAdmin, pipeAdmin string
}

// startRig starts the backends and every contender, logging to dir, and
// waits until each answers.
func startRig(ctx context.Context, s settings, dir string) (*rig, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r := &rig{pids: map[string]int{}, targets: map[string]string{}}
	backendAddrs, err := r.startBackends(ctx, s, dir, self)
	if err != nil {
		return nil, err
	}
	if err := r.startNginx(ctx, s, dir, backendAddrs); err != nil {
		return nil, err
	}
	var frontEnv []string
	if s.frontProcs > 0 {
		frontEnv = append(frontEnv, "GOMAXPROCS="+strconv.Itoa(s.frontProcs))
	}
	if r.frontAdmin, err = r.startFront(ctx, s, dir, "potluck-front", "front.yaml", "", frontEnv, backendAddrs); err != nil {
		return nil, err
	}
	if s.pipeline > 0 {
		pool := fmt.Sprintf("backend_pool:\n  pipeline: %d\n  pipeline_depth: %d\n", s.pipeline, s.pipeDepth)
		if r.pipeAdmin, err = r.startFront(ctx, s, dir, "potluck-pipe", "front-pipe.yaml", pool, frontEnv, backendAddrs); err != nil {
			return nil, err
		}
	}
	if s.baseline {
		addr, err := freeport.TCP()
		if err != nil {
			return nil, err
		}
		pid, err := startProcPID(ctx, dir, "rawproxy", frontEnv, self, "rawproxy", "--listen", addr,
			"--backends", strings.Join(backendAddrs, ","))
		if err != nil {
			return nil, err
		}
		r.add("fasthttp-raw", addr, pid)
	}
	for _, a := range backendAddrs {
		if err := waitHTTP(a, 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s did not come up: %w (logs in %s)", a, err, dir)
		}
	}
	for _, name := range r.contenders {
		if err := waitHTTP(r.targets[name], 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s did not come up: %w (logs in %s)", r.targets[name], err, dir)
		}
	}
	return r, nil
}

// startBackends runs --backends test backends (this binary's backend
// command) and returns their addresses.
func (r *rig) startBackends(ctx context.Context, s settings, dir, self string) ([]string, error) {
	var addrs []string
	for range s.backends {
		addr, err := freeport.TCP()
		if err != nil {
			return nil, err
		}
		pid, err := startProcPID(ctx, dir, "backend-"+addr, nil, self, "backend", "--addr", addr)
		if err != nil {
			return nil, err
		}
		r.backendPIDs = append(r.backendPIDs, pid)
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

func (r *rig) add(name, addr string, pid int) {
	r.contenders = append(r.contenders, name)
	r.targets[name] = addr
	r.pids[name] = pid
}

func (r *rig) startNginx(ctx context.Context, s settings, dir string, backends []string) error {
	addr, err := freeport.TCP()
	if err != nil {
		return err
	}
	if err := writeNginxConf(dir, addr, backends); err != nil {
		return err
	}
	pid, err := startProcPID(ctx, dir, "nginx", nil, s.nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	if err != nil {
		return err
	}
	r.add("nginx", addr, pid)
	return nil
}

// startFront runs potluck-front standalone as contender name, with extra
// YAML (backend_pool settings) in its config, and returns its admin address.
func (r *rig) startFront(ctx context.Context, s settings, dir, name, confName, extra string, env, backends []string) (string, error) {
	addr, err := freeport.TCP()
	if err != nil {
		return "", err
	}
	admin, err := freeport.TCP()
	if err != nil {
		return "", err
	}
	if err := writeFrontConf(dir, confName, addr, admin, backends, extra); err != nil {
		return "", err
	}
	args := []string{"--config", filepath.Join(dir, confName), "--log-level", "warn", "--watch-interval", "0"}
	if s.profile != "" {
		args = append(args, "--pprof")
	}
	pid, err := startProcPID(ctx, dir, name, env, s.frontBin, args...)
	if err != nil {
		return "", err
	}
	r.add(name, addr, pid)
	return admin, nil
}

// warmUp loads every contender briefly (connection pools, page cache, CPU
// frequency) before anything is measured.
func warmUp(s settings, r *rig) error {
	for _, name := range r.contenders {
		if _, err := runWrk(s, r.targets[name], 2*time.Second); err != nil {
			return fmt.Errorf("warm-up %s: %w", name, err)
		}
	}
	return nil
}

// waitHTTP polls addr until it answers 200, for at most limit.
func waitHTTP(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		code, _, err := fasthttp.GetTimeout(nil, "http://"+addr+"/", time.Second)
		if err == nil && code == 200 {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("status %d", code)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return last
}
