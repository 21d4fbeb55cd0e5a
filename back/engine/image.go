package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/client"

	"potluck/back/imagetar"
)

// LoadImageAs loads an untrusted `docker save` tarball and names the image
// ref, and nothing else. The tarball's own names never reach the engine:
// it is streamed through imagetar.StripTags, so loading tags nothing (a
// tarball naming a lender's image or another app's cannot re-point them).
// The image the engine loaded must be the one the manifest names (its ID is
// the config's digest); only then is it tagged ref. It returns the image ID.
func (e *Engine) LoadImageAs(ctx context.Context, tarball io.Reader, ref string) (string, error) {
	type stripped struct {
		cfg string
		err error
	}
	pr, pw := io.Pipe()
	done := make(chan stripped, 1)
	go func() {
		cfg, err := imagetar.StripTags(pw, tarball)
		pw.CloseWithError(err)
		done <- stripped{cfg, err}
	}()
	var ids []string
	res, err := e.cli.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err == nil {
		ids, err = readLoad(res)
		res.Close()
	} else {
		err = fmt.Errorf("docker load: %w", err)
	}
	// Unblocks the copy if the engine stopped reading early.
	pr.CloseWithError(errors.New("docker load ended"))
	st := <-done
	if st.err != nil {
		return "", st.err
	}
	if err != nil {
		return "", err
	}
	cfg := st.cfg
	if len(ids) != 1 || cfg == "" || ids[0] != cfg {
		return "", fmt.Errorf("docker load: the engine loaded %v, not the image %s the tarball's manifest names", ids, cfg)
	}
	if err := e.TagImage(ctx, cfg, ref); err != nil {
		return "", err
	}
	e.log.Info("image loaded", "image", ref, "id", cfg)
	return cfg, nil
}

// readLoad returns the image IDs (or names) the engine reports loading.
func readLoad(r io.Reader) ([]string, error) {
	var loaded []string
	dec := json.NewDecoder(r)
	for {
		var msg struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("docker load: reading engine reply: %w", err)
		}
		if msg.Error != "" {
			return nil, fmt.Errorf("docker load: %s", msg.Error)
		}
		for _, prefix := range []string{"Loaded image ID: ", "Loaded image: "} {
			if ref, ok := strings.CutPrefix(strings.TrimSpace(msg.Stream), prefix); ok {
				loaded = append(loaded, ref)
			}
		}
	}
	if len(loaded) == 0 {
		return nil, errors.New("docker load: the tarball held no image")
	}
	return loaded, nil
}

// ImageID returns the ID of local image ref.
func (e *Engine) ImageID(ctx context.Context, ref string) (string, error) {
	res, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("docker image inspect %s: %w", ref, err)
	}
	return res.ID, nil
}

// ImageSizes returns the local references matching pattern (a reference
// pattern such as "potluck-blob/h-1/*") with the size of each image.
func (e *Engine) ImageSizes(ctx context.Context, pattern string) (map[string]int64, error) {
	res, err := e.cli.ImageList(ctx, client.ImageListOptions{Filters: client.Filters{}.Add("reference", pattern)})
	if err != nil {
		return nil, fmt.Errorf("docker images %s: %w", pattern, err)
	}
	out := map[string]int64{}
	for _, img := range res.Items {
		for _, t := range img.RepoTags {
			out[t] = img.Size
		}
	}
	return out, nil
}

// ImagesMatching lists the local image references matching a reference
// pattern such as "potluck-blob/h-1/*".
func (e *Engine) ImagesMatching(ctx context.Context, pattern string) ([]string, error) {
	sizes, err := e.ImageSizes(ctx, pattern)
	if err != nil {
		return nil, err
	}
	refs := make([]string, 0, len(sizes))
	for r := range sizes {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	return refs, nil
}

// Facts is what the engine's machine has.
type Facts struct {
	CPUs        int
	MemoryBytes int64
	RootDir     string // Docker's data root, where images and containers live
	Arch        string // the machine's architecture as uname -m says it (x86_64)
}

// Facts asks the engine about its machine.
func (e *Engine) Facts(ctx context.Context) (Facts, error) {
	res, err := e.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Facts{}, fmt.Errorf("docker info: %w", err)
	}
	return Facts{CPUs: res.Info.NCPU, MemoryBytes: res.Info.MemTotal, RootDir: res.Info.DockerRootDir, Arch: res.Info.Architecture}, nil
}

// ExposedTCPPorts returns the TCP ports image ref declares with EXPOSE
// (none: it declares nothing, which says nothing about where it listens).
func (e *Engine) ExposedTCPPorts(ctx context.Context, ref string) ([]uint16, error) {
	res, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("docker image inspect %s: %w", ref, err)
	}
	var out []uint16
	if res.Config == nil {
		return nil, nil
	}
	for p := range res.Config.ExposedPorts {
		num, proto, _ := strings.Cut(p, "/")
		if proto != "" && proto != "tcp" {
			continue
		}
		if n, err := strconv.ParseUint(num, 10, 16); err == nil {
			out = append(out, uint16(n))
		}
	}
	slices.Sort(out)
	return out, nil
}
