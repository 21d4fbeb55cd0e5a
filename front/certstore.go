package front

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"potluck/agentproto"
)

// caller is how the store reaches the core's agent API (agent.Agent.Call).
type caller func(ctx context.Context, method, path string, body []byte, limit int64) (int, []byte, error)

// coreStorage is certmagic's storage kept by the core: every Front of an
// installation reads the same certificate, and a challenge one Front
// started is answered by whichever Front the CA reaches. Locks are the
// core's (raft), held for lockTTL and renewed while held, so a Front that
// dies holding one frees it within lockTTL.
type coreStorage struct {
	call caller
	log  *slog.Logger

	mu    sync.Mutex
	held  map[string]context.CancelFunc // renewers of the locks we hold
	retry time.Duration                 // wait between tries of a held lock
}

const (
	lockTTL      = 2 * time.Minute
	maxCertReply = agentproto.MaxCertValue + 4096
	storeTimeout = 20 * time.Second
)

var _ certmagic.Storage = (*coreStorage)(nil)

func newCoreStorage(call caller, log *slog.Logger) *coreStorage {
	return &coreStorage{call: call, log: log, held: map[string]context.CancelFunc{}, retry: time.Second}
}

func certPath(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return agentproto.PathCerts + strings.Join(parts, "/")
}

func (s *coreStorage) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return s.call(ctx, method, path, body, maxCertReply)
}

func storeError(op, key string, code int, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return fmt.Errorf("certificate store: %s %s: HTTP %d: %s", op, key, code, e.Error)
}

func (s *coreStorage) Store(ctx context.Context, key string, value []byte) error {
	code, body, err := s.do(ctx, http.MethodPut, certPath(key), value)
	if err != nil {
		return err
	}
	if code != http.StatusNoContent {
		return storeError("store", key, code, body)
	}
	return nil
}

func (s *coreStorage) Load(ctx context.Context, key string) ([]byte, error) {
	code, body, err := s.do(ctx, http.MethodGet, certPath(key), nil)
	if err != nil {
		return nil, err
	}
	switch code {
	case http.StatusOK:
		return body, nil
	case http.StatusNotFound:
		return nil, fs.ErrNotExist
	}
	return nil, storeError("load", key, code, body)
}

func (s *coreStorage) Delete(ctx context.Context, key string) error {
	code, body, err := s.do(ctx, http.MethodDelete, certPath(key), nil)
	if err != nil {
		return err
	}
	switch code {
	case http.StatusNoContent:
		return nil
	case http.StatusNotFound:
		return fs.ErrNotExist
	}
	return storeError("delete", key, code, body)
}

func (s *coreStorage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

func (s *coreStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	q := url.Values{"list": {prefix}}
	if recursive {
		q.Set("recursive", "true")
	}
	code, body, err := s.do(ctx, http.MethodGet, agentproto.PathCerts+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, storeError("list", prefix, code, body)
	}
	var l agentproto.CertList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("certificate store: list %s: %w", prefix, err)
	}
	if len(l.Keys) == 0 {
		return nil, fs.ErrNotExist
	}
	return l.Keys, nil
}

func (s *coreStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	code, body, err := s.do(ctx, http.MethodGet, certPath(key)+"?stat=true", nil)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		return certmagic.KeyInfo{}, fs.ErrNotExist
	default:
		return certmagic.KeyInfo{}, storeError("stat", key, code, body)
	}
	var st agentproto.CertStat
	if err := json.Unmarshal(body, &st); err != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("certificate store: stat %s: %w", key, err)
	}
	return certmagic.KeyInfo{Key: st.Key, Modified: st.Modified, Size: st.Size, IsTerminal: st.Terminal}, nil
}

// Lock waits until the core grants the lock to this Front or ctx ends.
func (s *coreStorage) Lock(ctx context.Context, name string) error {
	path := agentproto.PathCertLocks + url.PathEscape(name) + "?ttl=" + lockTTL.String()
	for {
		code, body, err := s.do(ctx, http.MethodPost, path, nil)
		switch {
		case err == nil && code == http.StatusNoContent:
			s.keepFresh(name, path)
			return nil
		case err == nil && code != http.StatusConflict:
			return storeError("lock", name, code, body)
		}
		// Held by another Front (409), or no core node answered: wait.
		select {
		case <-ctx.Done():
			return fmt.Errorf("certificate store: lock %s: %w", name, ctx.Err())
		case <-time.After(s.retry):
		}
	}
}

// keepFresh renews a held lock every third of its TTL until Unlock.
func (s *coreStorage) keepFresh(name, path string) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	if prev := s.held[name]; prev != nil {
		prev()
	}
	s.held[name] = cancel
	s.mu.Unlock()
	go func() {
		t := time.NewTicker(lockTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if code, _, err := s.do(ctx, http.MethodPost, path, nil); err != nil || code != http.StatusNoContent {
					s.log.Warn("certificate lock not renewed", "lock", name, "status", code, "err", err)
				}
			}
		}
	}()
}

func (s *coreStorage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	if cancel := s.held[name]; cancel != nil {
		cancel()
		delete(s.held, name)
	}
	s.mu.Unlock()
	code, body, err := s.do(ctx, http.MethodDelete, agentproto.PathCertLocks+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	if code != http.StatusNoContent {
		return storeError("unlock", name, code, body)
	}
	return nil
}

// close stops every lock renewer (the locks expire at the core).
func (s *coreStorage) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, cancel := range s.held {
		cancel()
		delete(s.held, name)
	}
}
