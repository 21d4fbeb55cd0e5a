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

// builtImage is an image's `docker save` tarball, built once per test binary.
type builtImage struct {
	once sync.Once
	path string
	err  error
}

var sample, probe builtImage

// SampleImage returns the path of the sample app's `docker save` tarball
// (tag appimage.DefaultTag), built once per test binary.
func SampleImage(t testing.TB) string {
	t.Helper()
	return sample.get(t, "sample", func(ctx context.Context, out string) error {
		return appimage.Build(ctx, appimage.DefaultTag, out)
	})
}

// ProbeImage builds the probe test image (tag appimage.ProbeTag, see
// bench/appimage/probe) once per test binary and returns the path of its
// `docker save` tarball; the image is also tagged in the engine.
func ProbeImage(t testing.TB) string {
	t.Helper()
	return probe.get(t, "probe", func(ctx context.Context, out string) error {
		return appimage.BuildProbe(ctx, appimage.ProbeTag, out)
	})
}

// get builds the image the first time and returns its tarball's path.
func (b *builtImage) get(t testing.TB, name string, build func(ctx context.Context, out string) error) string {
	t.Helper()
	Require(t)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "potluck-"+name+"-*")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name+"-image.tar")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.err = build(ctx, b.path)
	})
	if b.err != nil {
		t.Fatalf("building the %s image: %v", name, b.err)
	}
	return b.path
}
