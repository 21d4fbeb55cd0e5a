package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func TestGOArch(t *testing.T) {
	for machine, want := range map[string]string{
		"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "i686": "386",
		"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", " X86_64\n": "amd64", "": "",
	} {
		require.Equal(t, want, GOArch(machine), machine)
	}
}

// TestStorageType reads a disk's rotational flag through a fake sysfs whose
// device numbers are the real ones of a temporary directory.
func TestStorageType(t *testing.T) {
	dir := t.TempDir()
	var st unix.Stat_t
	require.NoError(t, unix.Stat(dir, &st))
	if unix.Major(st.Dev) == 0 {
		require.Empty(t, StorageType(dir), "no block device: unknown")
		t.Skip("the temporary directory is on a filesystem without a block device (overlay, tmpfs)")
	}
	devNum := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	tests := []struct {
		name       string
		partition  bool   // the device is a partition of a disk
		rotational string // "" writes no flag
		want       string
	}{
		{"ssd disk", false, "0\n", StorageSSD},
		{"hdd disk", false, "1\n", StorageHDD},
		{"partition of an ssd", true, "0\n", StorageSSD},
		{"partition of an hdd", true, "1\n", StorageHDD},
		{"no flag", false, "", ""},
		{"odd flag", false, "2\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sys := t.TempDir()
			disk := filepath.Join(sys, "devices", "sda")
			dev := disk
			if tc.partition {
				dev = filepath.Join(disk, "sda1")
			}
			require.NoError(t, os.MkdirAll(filepath.Join(dev), 0o755))
			if tc.rotational != "" {
				require.NoError(t, os.MkdirAll(filepath.Join(disk, "queue"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(disk, "queue", "rotational"), []byte(tc.rotational), 0o644))
			}
			block := filepath.Join(sys, "dev", "block")
			require.NoError(t, os.MkdirAll(block, 0o755))
			require.NoError(t, os.Symlink(dev, filepath.Join(block, devNum)))
			require.Equal(t, tc.want, storageType(block, dir))
		})
	}
	require.Empty(t, storageType(t.TempDir(), dir), "no sysfs entry: unknown")
}

func TestMeasureLocalReportsFeatures(t *testing.T) {
	m, err := MeasureLocal(t.TempDir())(t.Context(), "")
	require.NoError(t, err)
	require.Equal(t, runtime.GOARCH, m.Arch)
	require.Contains(t, []string{"", StorageSSD, StorageHDD}, m.Storage)
}
