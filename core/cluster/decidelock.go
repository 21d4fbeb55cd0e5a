package cluster

import (
	"context"
	"sync"
)

// decideLock serialises the leader's decisions, first come first served,
// except that urgent ones go before every ordinary one waiting. Heartbeats
// that report changes are urgent: at a few thousand hosts a create holds the
// lock for milliseconds of planning, and a heartbeat queued behind eight of
// them is late for the agent that waits on it (and, late enough, for the
// host's TTL). sync.Mutex gives neither order nor priority.
type decideLock struct {
	mu     sync.Mutex
	held   bool
	urgent []chan struct{}
	normal []chan struct{}
}

func (l *decideLock) Lock() { l.lock(false) }

func (l *decideLock) lock(urgent bool) {
	l.mu.Lock()
	if !l.held {
		l.held = true
		l.mu.Unlock()
		return
	}
	turn := make(chan struct{})
	if urgent {
		l.urgent = append(l.urgent, turn)
	} else {
		l.normal = append(l.normal, turn)
	}
	l.mu.Unlock()
	<-turn // the lock is handed over held
}

func (l *decideLock) Unlock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next chan struct{}
	switch {
	case len(l.urgent) > 0:
		next, l.urgent = l.urgent[0], l.urgent[1:]
	case len(l.normal) > 0:
		next, l.normal = l.normal[0], l.normal[1:]
	default:
		l.held = false
		return
	}
	close(next)
}

type urgentKey struct{}

// Urgent marks the decisions made with ctx as urgent: Decide takes them
// before the ordinary ones waiting (see decideLock).
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

func isUrgent(ctx context.Context) bool {
	u, _ := ctx.Value(urgentKey{}).(bool)
	return u
}
