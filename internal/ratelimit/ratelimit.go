// Package ratelimit keeps one token bucket per key (a client address): a
// key may spend Burst tokens at once, and regains Rate tokens a second. It
// is for failures (wrong tokens, wrong logins), so a key that never fails
// never appears in it; the number of keys held is bounded.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultRate    = 0.2 // one failure every 5 s, sustained
	DefaultBurst   = 10  // failures in a row before the first refusal
	DefaultMaxKeys = 100_000
)

// Config tunes a Limiter; zero values take the defaults.
type Config struct {
	Rate    float64 // tokens regained per second
	Burst   float64 // bucket size
	MaxKeys int     // keys remembered; when full, full buckets are forgotten first
	Now     func() time.Time
}

// Limiter holds the buckets. It is safe for concurrent use.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, buckets: map[string]*bucket{}}
}

// refill brings b up to now; the caller holds mu.
func (l *Limiter) refill(b *bucket, now time.Time) {
	if now.After(b.at) {
		b.tokens = math.Min(l.cfg.Burst, b.tokens+now.Sub(b.at).Seconds()*l.cfg.Rate)
		b.at = now
	}
}

// Allow reports whether key may try again, and if not, how long until it
// may. It spends nothing: only Fail does.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return true, 0
	}
	now := l.cfg.Now()
	l.refill(b, now)
	if b.tokens >= 1 {
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.cfg.Rate * float64(time.Second))
	return false, wait
}

// Fail spends one token of key.
func (l *Limiter) Fail(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.cfg.MaxKeys {
			l.evict(now)
		}
		b = &bucket{tokens: l.cfg.Burst, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// evict forgets buckets that have refilled (they behave like new keys);
// if none has, it forgets an arbitrary half, so memory stays bounded even
// under a flood of distinct addresses. The caller holds mu.
func (l *Limiter) evict(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.cfg.Burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.cfg.MaxKeys/2 {
			break
		}
		delete(l.buckets, k)
	}
}

// RetryAfterSeconds is wait rounded up to whole seconds, at least 1, for a
// Retry-After header.
func RetryAfterSeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
