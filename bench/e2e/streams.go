package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"potluck/bench/procluster"
	"potluck/bench/procstat"
	"potluck/bench/wrk"
)

// loopbackName is the stream target without a proxy: one container's
// published port (through docker-proxy), for reference.
const loopbackName = "loopback"

// streams moves cfg.StreamBytes up and down in one request each through
// every path to the fast app, rounds times in rotating order, and prints
// MB/s and the contender's CPU time per MiB.
func (r *rig) streams(ctx context.Context, a app) error {
	out, n := r.cfg.Out, r.cfg.StreamBytes
	fmt.Fprintf(out, "\n## single stream, %d MiB per request to the fast app, %d rounds\n", n>>20, r.cfg.Rounds)
	fmt.Fprintf(out, "%-6s %-17s %12s %12s %14s %14s\n", "round", "path", "upload MB/s", "download MB/s", "up CPU/MiB", "down CPU/MiB")
	targets := append([]string{loopbackName}, r.contenders...)
	addrs := map[string]string{loopbackName: a.upstreams[0]}
	for _, name := range r.contenders {
		addrs[name] = r.addrs[name]
	}
	type figures struct{ up, down []float64 }
	all := map[string]*figures{}
	for round := range r.cfg.Rounds {
		order := rotate(targets, round)
		for _, name := range order {
			up, upCPU, err := r.transfer(ctx, name, addrs[name], a.domain, true)
			if err != nil {
				return fmt.Errorf("%s upload: %w", name, err)
			}
			down, downCPU, err := r.transfer(ctx, name, addrs[name], a.domain, false)
			if err != nil {
				return fmt.Errorf("%s download: %w", name, err)
			}
			f := all[name]
			if f == nil {
				f = &figures{}
				all[name] = f
			}
			f.up, f.down = append(f.up, up), append(f.down, down)
			fmt.Fprintf(out, "%-6d %-17s %12.0f %12.0f %14s %14s\n", round+1, name, up, down, cpuCol(name, upCPU), cpuCol(name, downCPU))
		}
	}
	fmt.Fprintf(out, "median MB/s (upload / download):")
	for _, name := range targets {
		fmt.Fprintf(out, "  %s %.0f / %.0f", name, medianOf(all[name].up), medianOf(all[name].down))
	}
	fmt.Fprintf(out, "\nratio front-mesh/front-standalone: upload %.2fx, download %.2fx\n",
		medianOf(all[meshName].up)/medianOf(all[standaloneName].up), medianOf(all[meshName].down)/medianOf(all[standaloneName].down))
	return nil
}

func cpuCol(name string, d time.Duration) string {
	if name == loopbackName {
		return "-"
	}
	return wrk.Short(d).String()
}

func medianOf(v []float64) float64 {
	return wrk.MedianOf(v, func(x float64) float64 { return x })
}

// transfer uploads (POST /upload) or downloads (GET /download) StreamBytes
// in one request on a fresh connection and returns MB/s and the CPU time
// per MiB of the contender's processes.
func (r *rig) transfer(ctx context.Context, name, addr, domain string, upload bool) (float64, time.Duration, error) {
	n := r.cfg.StreamBytes
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var req *http.Request
	if upload {
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/upload", io.LimitReader(zeroReader{}, n))
		req.ContentLength = n
	} else {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/download?bytes="+strconv.FormatInt(n, 10), nil)
	}
	req.Host = domain
	tr := &http.Transport{Proxy: nil, DisableCompression: true}
	defer tr.CloseIdleConnections()
	pids := r.pids[name]
	t0 := procstat.CPUTicks(pids...)
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, 0, err
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if !upload && got != n {
		return 0, 0, fmt.Errorf("downloaded %d bytes, want %d", got, n)
	}
	cpu := time.Duration(procstat.CPUTicks(pids...)-t0) * procstat.Tick
	return float64(n) / 1e6 / elapsed.Seconds(), time.Duration(float64(cpu) / (float64(n) / (1 << 20))), nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// profile takes CPU profiles of the Front and both Backs while wrk loads
// the fast app through the mesh (front.pprof, back1.pprof, back2.pprof),
// then while single streams go through the mesh back to back, downloads
// and uploads in turn (stream-front.pprof, ...), and writes them to
// cfg.ProfileDir.
func (r *rig) profile(ctx context.Context, c *procluster.Cluster, a app) error {
	if err := os.MkdirAll(r.cfg.ProfileDir, 0o755); err != nil {
		return err
	}
	secs := int(r.cfg.Duration.Seconds())
	err := r.profileWhile(ctx, c, "", func(ctx context.Context) error {
		_, err := r.wrk(ctx, r.cfg.Threads, r.cfg.Connections, r.cfg.Duration+2*time.Second, meshName, a)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(r.cfg.Out, "\nCPU profiles (fast app through the mesh, %ds) in %s: front.pprof, back1.pprof, back2.pprof (go tool pprof -top FILE)\n", secs, r.cfg.ProfileDir)
	if r.cfg.StreamBytes == 0 {
		return nil
	}
	err = r.profileWhile(ctx, c, "stream-", func(ctx context.Context) error {
		end := time.Now().Add(r.cfg.Duration + 2*time.Second)
		for i := 0; time.Now().Before(end); i++ {
			if _, _, err := r.transfer(ctx, meshName, r.addrs[meshName], a.domain, i%2 == 1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(r.cfg.Out, "CPU profiles (single streams through the mesh, %ds): stream-front.pprof, stream-back1.pprof, stream-back2.pprof\n", secs)
	return nil
}

// profileWhile runs load (which lasts cfg.Duration plus 2 s) and, from a
// second into it, takes a CPU profile of cfg.Duration of the Front and of
// each Back into cfg.ProfileDir, named prefix+front.pprof and so on.
func (r *rig) profileWhile(ctx context.Context, c *procluster.Cluster, prefix string, load func(context.Context) error) error {
	secs := int(r.cfg.Duration.Seconds())
	targets := map[string]string{"front": c.FrontAdmin}
	for i, m := range c.BackMetrics {
		targets[procluster.BackName(i)] = m
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(targets)+1)
	wg.Go(func() { errs <- load(ctx) })
	time.Sleep(time.Second)
	for name, addr := range targets {
		wg.Go(func() {
			errs <- fetchProfile(ctx, "http://"+addr+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), filepath.Join(r.cfg.ProfileDir, prefix+name+".pprof"))
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func fetchProfile(ctx context.Context, url, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d (is --pprof on?)", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, io.LimitReader(resp.Body, 64<<20)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
