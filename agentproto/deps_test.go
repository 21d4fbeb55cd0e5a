package agentproto

import (
	"testing"

	"potluck/internal/deptest"
)

// TestDependencies keeps the protocol free of everything but the standard
// library, so both sides can import it.
func TestDependencies(t *testing.T) {
	deptest.OnlyStandard(t, "potluck/agentproto")
}
