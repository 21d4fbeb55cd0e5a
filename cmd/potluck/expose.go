package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// maxTarJSON bounds a JSON member (manifest, image config) read from a
// tarball; real ones are a few KiB.
const maxTarJSON = 1 << 20

// exposedPorts reads the TCP ports a `docker save` tarball's image declares
// with EXPOSE, sorted. manifest.json usually comes last in the archive, so
// every small JSON member is kept until it is known which is the config.
func exposedPorts(path string) ([]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	jsons := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s as a tar archive: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".json") || h.Size > maxTarJSON {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxTarJSON))
		if err != nil {
			return nil, err
		}
		jsons[strings.TrimPrefix(h.Name, "./")] = b
	}
	var manifest []struct{ Config string }
	if err := json.Unmarshal(jsons["manifest.json"], &manifest); err != nil || len(manifest) == 0 {
		return nil, fmt.Errorf("%s has no manifest.json: give the tarball of `docker save IMAGE -o FILE`", path)
	}
	var cfg struct {
		Config struct{ ExposedPorts map[string]struct{} }
	}
	if err := json.Unmarshal(jsons[manifest[0].Config], &cfg); err != nil {
		return nil, fmt.Errorf("%s: image config %s: %w", path, manifest[0].Config, err)
	}
	var ports []int
	for p := range cfg.Config.ExposedPorts {
		num, proto, _ := strings.Cut(p, "/")
		if proto != "" && proto != "tcp" {
			continue
		}
		if n, err := strconv.Atoi(num); err == nil && n > 0 && n <= 65535 {
			ports = append(ports, n)
		}
	}
	sort.Ints(ports)
	return ports, nil
}
