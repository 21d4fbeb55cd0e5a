// Package dockertest gives tests a real Docker Engine and the sample app's
// image. Without an engine a test is skipped on a developer machine and fails
// in CI (CI=true), where scripts/install-deps.sh --docker must have started one.
package dockertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"potluck/bench/appimage"
	"potluck/internal/testenv"
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
	testenv.Missing(t, "no Docker Engine answers ("+err.Error()+"); run scripts/docker-up.sh as root")
}

// builtImage is an image's `docker save` tarball, built once per test binary.
type builtImage struct {
	once sync.Once
	path string
	err  error
	// lock is held on the tarball's directory for as long as the test binary
	// runs (see tarballDir).
	lock *os.File
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
		dir, lock, err := tarballDir("potluck-" + name + "-")
		if err != nil {
			b.err = err
			return
		}
		b.lock = lock
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

// A tarball outlives the test that asked for it (others in the binary reuse
// it) and a test binary has no hook after its last test, so each directory
// holds a lock file that its test binary keeps locked while it runs; the
// next binary to build an image removes the directories whose lock is free
// (their binary ended). A lock file younger than staleAfter is left alone:
// its binary may not have locked it yet.
const (
	lockFile   = ".lock"
	staleAfter = time.Minute
)

// tarballDir makes a directory for this test binary's tarball, locked while
// the binary runs, after removing those (same prefix) of binaries that ended.
func tarballDir(prefix string) (string, *os.File, error) {
	olds, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, old := range olds {
		removeIfEnded(old)
	}
	dir, err := os.MkdirTemp("", prefix+"*")
	if err != nil {
		return "", nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return dir, f, nil
}

// removeIfEnded removes dir when its lock is free and old enough: the test
// binary that made it has ended. Directories without a lock file are left
// alone (being made, or not made by tarballDir).
func removeIfEnded(dir string) {
	f, err := os.Open(filepath.Join(dir, lockFile))
	if err != nil {
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || time.Since(fi.ModTime()) < staleAfter {
		return
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return // its test binary still runs
	}
	os.RemoveAll(dir)
}
