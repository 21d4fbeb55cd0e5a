package localcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"potluck/back/engine"
	"potluck/internal/dockertest"
)

// TestCleanupRemovesANetworkWithoutContainers: a Back stopped between
// creating an installation's network and starting a container in it leaves
// a labelled network that no container removal takes along; Close's
// cleanup removes it. Before, it removed only containers, and e2e runs left
// such networks behind (seen after a CI run: two, of the installations
// "auto" and "site").
func TestCleanupRemovesANetworkWithoutContainers(t *testing.T) {
	dockertest.Require(t)
	ctx := context.Background()
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	host := "h-" + hex.EncodeToString(b)
	name := engine.NetworkName(host, "site")
	docker := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	var out string
	for i := range 16 { // a free /28 of the test range; other tenants may hold some
		subnet := fmt.Sprintf("198.19.%d.%d/28", 200+i/16, (i%16)*16)
		if out, err = docker("network", "create", "--label", engine.LabelManaged+"=true",
			"--label", engine.LabelHost+"="+host, "--subnet", subnet, name); err == nil {
			break
		}
	}
	require.NoError(t, err, out)
	t.Cleanup(func() { _, _ = docker("network", "rm", name) })

	require.NoError(t, removeHostResources(ctx, host))
	out, err = docker("network", "ls", "-q", "--filter", "label="+engine.LabelHost+"="+host)
	require.NoError(t, err, out)
	require.Empty(t, out, "the host's network is gone")
}
