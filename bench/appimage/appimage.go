// Package appimage builds the sample app (bench/app), the probe test app
// (bench/appimage/probe) and the fast benchmark app (bench/appimage/fast)
// into Docker images FROM scratch, offline, through the Engine API, and
// writes their `docker save` tarballs: what tests, the demo and the
// benchmarks deploy.
package appimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// DefaultTag names the sample image.
const DefaultTag = "potluck-sample-app:latest"

// ProbeTag names the probe image.
const ProbeTag = "potluck-probe:latest"

// FastTag names the fast benchmark app's image.
const FastTag = "potluck-bench-fast:latest"

const (
	appPackage   = "potluck/bench/app"
	probePackage = "potluck/bench/appimage/probe"
	fastPackage  = "potluck/bench/appimage/fast"
)

// Build compiles the sample app statically, builds the image tagged tag with
// the app's Dockerfile, and writes `docker save` output to out.
func Build(ctx context.Context, tag, out string) error {
	return buildPackage(ctx, appPackage, tag, out)
}

// BuildProbe builds the probe image (see bench/appimage/probe) the same way.
func BuildProbe(ctx context.Context, tag, out string) error {
	return buildPackage(ctx, probePackage, tag, out)
}

// BuildFast builds the fast benchmark app's image (see bench/appimage/fast)
// the same way.
func BuildFast(ctx context.Context, tag, out string) error {
	return buildPackage(ctx, fastPackage, tag, out)
}

// buildPackage compiles a main package statically as "app", builds an image
// tagged tag with the Dockerfile in the package's directory, and writes
// `docker save` output to out.
func buildPackage(ctx context.Context, pkg, tag, out string) error {
	dir, err := goList(ctx, pkg)
	if err != nil {
		return err
	}
	dockerfile, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return fmt.Errorf("app image: %w", err)
	}
	tmp, err := os.MkdirTemp("", "potluck-app-*")
	if err != nil {
		return fmt.Errorf("app image: %w", err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("app image: go build: %w\n%s", err, b)
	}
	buildCtx, err := contextTar(map[string]string{"Dockerfile": "", "app": bin}, dockerfile)
	if err != nil {
		return err
	}

	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("app image: %w", err)
	}
	defer cli.Close()
	res, err := cli.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true,
		Version: build.BuilderV1, // the classic builder needs nothing from the network
	})
	if err != nil {
		return fmt.Errorf("app image: docker build: %w", err)
	}
	err = drainBuild(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}

	saved, err := cli.ImageSave(ctx, []string{tag})
	if err != nil {
		return fmt.Errorf("app image: docker save: %w", err)
	}
	defer saved.Close()
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("app image: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("app image: %w", err)
	}
	if _, err := io.Copy(f, saved); err != nil {
		f.Close()
		return fmt.Errorf("app image: docker save: %w", err)
	}
	return f.Close()
}

func goList(ctx context.Context, pkg string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("app image: locate %s (run inside the Potluck module): %w", pkg, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// contextTar packs the Dockerfile and the named files into a build context.
func contextTar(files map[string]string, dockerfile []byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, path := range files {
		data := dockerfile
		mode := int64(0o644)
		if path != "" {
			var err error
			if data, err = os.ReadFile(path); err != nil {
				return nil, fmt.Errorf("app image: %w", err)
			}
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	return &buf, tw.Close()
}

// drainBuild reads the build's JSON stream and returns its error, if any.
func drainBuild(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("app image: docker build output: %w", err)
		}
		if msg.Error != "" {
			return fmt.Errorf("app image: docker build: %s", msg.Error)
		}
	}
}
