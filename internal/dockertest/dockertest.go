// Package dockertest gives tests a real Docker Engine and the sample app's
// image. Without an engine a test is skipped on a developer machine and fails
// in CI (CI=true), where scripts/install-deps.sh --docker must have started one.
package dockertest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"potluck/bench/appimage"
)

// Require fails (CI) or skips (elsewhere) unless a Docker Engine answers.
func Require(t testing.TB) {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cli.Close()
	}
	if err == nil {
		return
	}
	msg := "no Docker Engine answers (" + err.Error() + "); run scripts/docker-up.sh as root"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var sample struct {
	once sync.Once
	path string
	err  error
}

// SampleImage returns the path of the sample app's `docker save` tarball
// (tag appimage.DefaultTag), built once per test binary.
func SampleImage(t testing.TB) string {
	t.Helper()
	Require(t)
	sample.once.Do(func() {
		dir, err := os.MkdirTemp("", "potluck-sample-*")
		if err != nil {
			sample.err = err
			return
		}
		sample.path = filepath.Join(dir, "app-image.tar")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		sample.err = appimage.Build(ctx, appimage.DefaultTag, sample.path)
	})
	if sample.err != nil {
		t.Fatalf("building the sample image: %v", sample.err)
	}
	return sample.path
}

var probe struct {
	once sync.Once
	path string
	err  error
}

// ProbeImage builds the probe test image (tag appimage.ProbeTag, see
// bench/appimage/probe) once per test binary and returns the path of its
// `docker save` tarball; the image is also tagged in the engine.
func ProbeImage(t testing.TB) string {
	t.Helper()
	Require(t)
	probe.once.Do(func() {
		dir, err := os.MkdirTemp("", "potluck-probe-*")
		if err != nil {
			probe.err = err
			return
		}
		probe.path = filepath.Join(dir, "probe-image.tar")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		probe.err = appimage.BuildProbe(ctx, appimage.ProbeTag, probe.path)
	})
	if probe.err != nil {
		t.Fatalf("building the probe image: %v", probe.err)
	}
	return probe.path
}
