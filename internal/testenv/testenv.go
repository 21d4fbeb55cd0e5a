// Package testenv decides what a test does when the machine lacks something
// it needs (Docker, root, nginx, Chromium, iptables): skip on a developer's
// machine, fail in CI, where scripts/install-deps.sh provides all of it and
// a skip would hide a test that never ran.
package testenv

import (
	"os"
	"testing"
)

// Missing ends t because what it needs is missing, saying why: t.Fatal
// when CI is set (.ci/run sets it), t.Skip otherwise.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(why + " (CI: scripts/install-deps.sh should have provided it)")
	}
	t.Skip(why)
}
