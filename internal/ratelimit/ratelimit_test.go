package ratelimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/fakeclock"
)

func TestBucket(t *testing.T) {
	clk := fakeclock.New(time.Unix(1000, 0))
	l := New(Config{Rate: 0.5, Burst: 3, Now: clk.Now})
	ok, _ := l.Allow("a")
	require.True(t, ok, "an unknown key may try")
	for range 3 {
		ok, _ := l.Allow("a")
		require.True(t, ok)
		l.Fail("a")
	}
	ok, wait := l.Allow("a")
	require.False(t, ok, "the burst is spent")
	require.Equal(t, 2*time.Second, wait)
	ok, _ = l.Allow("b")
	require.True(t, ok, "keys are independent")

	clk.Advance(2 * time.Second)
	ok, _ = l.Allow("a")
	require.True(t, ok, "one token regained")
	l.Fail("a")
	ok, _ = l.Allow("a")
	require.False(t, ok)

	clk.Advance(time.Hour)
	for range 3 {
		l.Fail("a")
	}
	ok, _ = l.Allow("a")
	require.False(t, ok, "the bucket never holds more than the burst")
	require.Equal(t, 1, RetryAfterSeconds(10*time.Millisecond))
	require.Equal(t, 3, RetryAfterSeconds(2500*time.Millisecond))
}

func TestKeysBounded(t *testing.T) {
	clk := fakeclock.New(time.Unix(1000, 0))
	l := New(Config{Rate: 1, Burst: 2, MaxKeys: 100, Now: clk.Now})
	for i := range 1000 {
		l.Fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	require.LessOrEqual(t, len(l.buckets), 100)
}
