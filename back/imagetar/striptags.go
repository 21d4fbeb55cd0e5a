package imagetar

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
)

// Annotations by which an OCI index names an image; a loader that reads
// index.json (containerd's image store) tags by them.
var nameAnnotations = []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"}

// StripTags copies the tarball from src to dst so that loading it applies
// no name at all: manifest.json's RepoTags are emptied, the legacy
// "repositories" file (the other place `docker load` takes tags from) is
// dropped, and name annotations are removed from index.json. Everything
// else is copied byte for byte, so layers and config, and with them the
// image ID, are unchanged. It returns the config digest manifest.json names
// (the image ID the load must yield) and refuses a manifest with more than
// one image.
func StripTags(dst io.Writer, src io.Reader) (configDigest string, err error) {
	tr := tar.NewReader(src)
	tw := tar.NewWriter(dst)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("strip tags: reading the archive: %w", err)
		}
		switch path.Clean(hdr.Name) {
		case "repositories":
			continue
		case "manifest.json":
			data, cfg, err := untagManifest(tr)
			if err != nil {
				return "", err
			}
			configDigest = cfg
			if err := writeFile(tw, hdr, data); err != nil {
				return "", err
			}
			continue
		case "index.json":
			data, err := unnameIndex(tr)
			if err != nil {
				return "", err
			}
			if err := writeFile(tw, hdr, data); err != nil {
				return "", err
			}
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", fmt.Errorf("strip tags: %w", err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return "", fmt.Errorf("strip tags: %q: %w", hdr.Name, err)
		}
	}
	if configDigest == "" {
		return "", invalid("no manifest.json in the archive")
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("strip tags: %w", err)
	}
	return configDigest, nil
}

func writeFile(tw *tar.Writer, hdr *tar.Header, data []byte) error {
	h := *hdr
	h.Size = int64(len(data))
	if err := tw.WriteHeader(&h); err != nil {
		return fmt.Errorf("strip tags: %w", err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("strip tags: %w", err)
	}
	return nil
}

func readSmall(r io.Reader, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("strip tags: %s: %w", name, err)
	}
	if len(data) > MaxManifest {
		return nil, invalid("%s is larger than %d bytes", name, MaxManifest)
	}
	return data, nil
}

// untagManifest keeps every field of the one image's manifest entry but
// RepoTags, which it empties.
func untagManifest(r io.Reader) ([]byte, string, error) {
	data, err := readSmall(r, "manifest.json")
	if err != nil {
		return nil, "", err
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(data, &entries); err != nil {
		return nil, "", invalid("manifest.json: %v", err)
	}
	if len(entries) != 1 {
		return nil, "", invalid("manifest.json lists %d images; an app is one image", len(entries))
	}
	var cfgName string
	if err := json.Unmarshal(entries[0]["Config"], &cfgName); err != nil {
		return nil, "", invalid("manifest.json: Config: %v", err)
	}
	cfg, err := configDigest(cfgName)
	if err != nil {
		return nil, "", err
	}
	entries[0]["RepoTags"] = json.RawMessage("null")
	out, err := json.Marshal(entries)
	if err != nil {
		return nil, "", fmt.Errorf("strip tags: %w", err)
	}
	return out, cfg, nil
}

// unnameIndex removes the name annotations of index.json's manifests.
func unnameIndex(r io.Reader) ([]byte, error) {
	data, err := readSmall(r, "index.json")
	if err != nil {
		return nil, err
	}
	var index map[string]json.RawMessage
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, invalid("index.json: %v", err)
	}
	var manifests []map[string]json.RawMessage
	if raw, ok := index["manifests"]; ok {
		if err := json.Unmarshal(raw, &manifests); err != nil {
			return nil, invalid("index.json: manifests: %v", err)
		}
	}
	for _, m := range manifests {
		var ann map[string]string
		if raw, ok := m["annotations"]; ok {
			if err := json.Unmarshal(raw, &ann); err != nil {
				return nil, invalid("index.json: annotations: %v", err)
			}
		}
		for _, k := range nameAnnotations {
			delete(ann, k)
		}
		if ann != nil {
			b, _ := json.Marshal(ann)
			m["annotations"] = b
		}
	}
	if manifests != nil {
		b, _ := json.Marshal(manifests)
		index["manifests"] = b
	}
	out, err := json.Marshal(index)
	if err != nil {
		return nil, fmt.Errorf("strip tags: %w", err)
	}
	return out, nil
}
