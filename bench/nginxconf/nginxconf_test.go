package nginxconf

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/internal/testenv"
)

// TestNginxAcceptsTheConfig: nginx -t takes what Config writes, for one
// site and for several with names and body limits.
func TestNginxAcceptsTheConfig(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			testenv.Missing(t, "nginx (scripts/install-deps.sh)")
		}
	}
	for _, sites := range [][]Site{
		{{Listen: "127.0.0.1:18080", Backends: []string{"127.0.0.1:9001", "127.0.0.1:9002"}}},
		{{Name: "a.test", Listen: "127.0.0.1:18081", Backends: []string{"127.0.0.1:9001"}, MaxBody: "0"},
			{Name: "b.test", Listen: "127.0.0.1:18081", Backends: []string{"127.0.0.1:9002"}, MaxBody: "0"}},
	} {
		dir := t.TempDir()
		conf := filepath.Join(dir, "nginx.conf")
		require.NoError(t, os.WriteFile(conf, []byte(Config(dir, sites...)), 0o600))
		out, err := exec.Command(bin, "-t", "-p", dir, "-c", conf).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
}
