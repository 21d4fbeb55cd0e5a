// Package deptest checks a package's transitive imports in tests, so that a
// dependency the design forbids (an agent pulling in raft, say) fails the
// build's tests instead of creeping in.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// Deps lists the import paths pkg depends on, itself included, for the
// build this test runs on.
func Deps(t testing.TB, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var deps []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			deps = append(deps, line)
		}
	}
	return deps
}

// Forbid fails t if pkg depends on any import path that starts with one of
// the forbidden prefixes ("potluck/core/" forbids every core package).
func Forbid(t testing.TB, pkg string, forbidden ...string) {
	t.Helper()
	for _, dep := range Deps(t, pkg) {
		for _, f := range forbidden {
			if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) {
				t.Errorf("%s depends on %s (forbidden: %s)", pkg, dep, f)
			}
		}
	}
}

// OnlyStandard fails t if pkg depends on anything outside the standard
// library but itself and the allowed import paths.
func OnlyStandard(t testing.TB, pkg string, allowed ...string) {
	t.Helper()
	ok := map[string]bool{pkg: true}
	for _, a := range allowed {
		ok[a] = true
	}
	for _, dep := range Deps(t, pkg) {
		if !ok[dep] {
			t.Errorf("%s depends on %s; it may import only the standard library", pkg, dep)
		}
	}
}

// ControlPlane are the import paths no agent or library may depend on.
var ControlPlane = []string{
	"potluck/core/",
	"github.com/hashicorp/raft",
	"github.com/hashicorp/raft-boltdb",
	"github.com/boltdb/bolt",
	"go.etcd.io/bbolt",
}
