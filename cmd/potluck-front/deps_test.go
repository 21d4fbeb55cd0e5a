package main

import (
	"testing"

	"potluck/internal/deptest"
)

// TestDependencies keeps the control plane (core, raft, bolt) out of this
// package: it runs on lenders' machines or is used as a library.
func TestDependencies(t *testing.T) {
	deptest.Forbid(t, "potluck/cmd/potluck-front", deptest.ControlPlane...)
}
