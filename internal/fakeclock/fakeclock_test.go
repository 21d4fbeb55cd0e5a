package fakeclock

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClockMovesOnlyWhenAdvanced(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := New(start)
	require.Equal(t, start, c.Now())
	require.Equal(t, start, c.Now(), "time does not pass by itself")
	c.Advance(90 * time.Second)
	require.Equal(t, start.Add(90*time.Second), c.Now())
}
