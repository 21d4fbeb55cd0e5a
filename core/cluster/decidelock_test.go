package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Waiting decisions get the lock in arrival order, urgent ones first.
func TestDecideLockServesUrgentFirstThenInOrder(t *testing.T) {
	var l decideLock
	l.Lock()
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	queued := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.urgent) + len(l.normal)
	}
	for i, w := range []struct {
		name   string
		urgent bool
	}{{"create-1", false}, {"heartbeat-1", true}, {"create-2", false}, {"heartbeat-2", true}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.lock(w.urgent)
			mu.Lock()
			order = append(order, w.name)
			mu.Unlock()
			l.Unlock()
		}()
		require.Eventually(t, func() bool { return queued() == i+1 }, 5*time.Second, time.Millisecond, "waiter %s queued", w.name)
	}
	l.Unlock()
	wg.Wait()
	require.Equal(t, []string{"heartbeat-1", "heartbeat-2", "create-1", "create-2"}, order)
	require.False(t, l.held, "free once everyone is done")
}

func TestUrgentMarksTheContext(t *testing.T) {
	require.False(t, isUrgent(context.Background()))
	require.True(t, isUrgent(Urgent(context.Background())))
}
