package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Storage types a host reports; installations can require them
// (--requires storage=ssd).
const (
	StorageSSD = "ssd" // solid state: no rotational latency (SATA SSD, NVMe)
	StorageHDD = "hdd"
)

// GOArch names a machine architecture as uname -m (and the Docker Engine)
// spells it in Go's terms, the ones apps require: x86_64 is amd64, aarch64
// is arm64. A name it does not know is kept, lower-cased.
func GOArch(machine string) string {
	m := strings.ToLower(strings.TrimSpace(machine))
	switch m {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64", "armv8l":
		return "arm64"
	case "i386", "i486", "i586", "i686", "x86":
		return "386"
	case "ppc64el":
		return "ppc64le"
	}
	if strings.HasPrefix(m, "armv") {
		return "arm"
	}
	return m
}

// StorageType tells whether the block device holding path is solid state
// or spinning, from sysfs. "" means it cannot tell: a filesystem without a
// block device (overlay, tmpfs, a network mount) or no sysfs.
func StorageType(path string) string {
	return storageType("/sys/dev/block", path)
}

func storageType(sysDevBlock, path string) string {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return ""
	}
	maj, min := unix.Major(st.Dev), unix.Minor(st.Dev)
	if maj == 0 {
		return "" // no block device behind it
	}
	dev, err := filepath.EvalSymlinks(filepath.Join(sysDevBlock, fmt.Sprintf("%d:%d", maj, min)))
	if err != nil {
		return ""
	}
	// A partition's queue is its disk's, one directory up.
	for _, dir := range []string{dev, filepath.Dir(dev)} {
		data, err := os.ReadFile(filepath.Join(dir, "queue", "rotational"))
		if err != nil {
			continue
		}
		switch strings.TrimSpace(string(data)) {
		case "0":
			return StorageSSD
		case "1":
			return StorageHDD
		}
		return ""
	}
	return ""
}
