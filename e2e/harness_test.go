package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/internal/localcluster"
	"potluck/internal/testlog"
)

// system is the test's view of a localcluster: a whole Potluck on loopback,
// all real (raft over TCP, WireGuard over UDP, containers in Docker).
type system struct {
	t     *testing.T
	c     *localcluster.Cluster
	front *localcluster.FrontHost
	backs []*localcluster.BackHost
}

// logger keeps the nodes' last log lines and shows them if t fails;
// E2E_VERBOSE=1 also prints them as they come.
func logger(t *testing.T) *slog.Logger {
	return testlog.New(t, testlog.DefaultKeep, os.Getenv("E2E_VERBOSE") != "")
}

// closeAtEnd stops c when the test ends and logs what its cleanup could
// not remove (containers or networks left: say so, do not fail the test).
func closeAtEnd(t *testing.T, c *localcluster.Cluster) {
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Logf("cluster cleanup: %v", err)
		}
	})
}

func newSystem(t *testing.T, cores int, ttl time.Duration) *system {
	c, err := localcluster.Start(context.Background(), localcluster.Config{
		Dir: t.TempDir(), Cores: cores, HeartbeatTTL: ttl, Logger: logger(t),
	})
	require.NoError(t, err)
	closeAtEnd(t, c)
	return &system{t: t, c: c}
}

// api calls the public API on the first core node that answers.
func (s *system) api(method, path string, body, out any) int {
	code, err := s.c.API(context.Background(), method, path, body, out)
	if code >= 200 && code < 300 {
		require.NoError(s.t, err)
	} else if err != nil {
		s.t.Log(err)
	}
	return code
}

func (s *system) startFront() {
	f, err := s.c.StartFront(context.Background(), "front1")
	require.NoError(s.t, err)
	s.front = f
}

func (s *system) startBack(i int, dir string) *localcluster.BackHost {
	b, err := s.c.StartBack(context.Background(), fmt.Sprintf("back%d", i+1), i, dir)
	require.NoError(s.t, err)
	return b
}

// backDirs are fresh state dirs for n Backs.
func backDirs(t *testing.T, n int) []string {
	var dirs []string
	for i := range n {
		dirs = append(dirs, filepath.Join(t.TempDir(), fmt.Sprintf("back%d", i+1)))
	}
	return dirs
}

// get sends one request through the Front with the app's Host header.
func (s *system) get(host string) (int, string, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.front.Addr+"/", nil)
	req.Host = host
	resp, err := frontClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Instance"), string(b), err
}

var frontClient = &http.Client{Timeout: 10 * time.Second}

// startLoad sends sequential GETs of / through the Front until stopped;
// bounded by maxRequests.
func (s *system) startLoad(host string, maxRequests int) *loadLoop {
	return s.startClients(host, "/", 1, maxRequests, 10*time.Millisecond)
}

// loadLoop sends GETs of path through the Front from workers
// goroutines, each waiting pause between requests, until stopped or
// maxRequests were sent, and counts the failed ones.
type loadLoop struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	ok, fail int
	failures []string
}

func (s *system) startClients(host, path string, workers, maxRequests int, pause time.Duration) *loadLoop {
	l := &loadLoop{stop: make(chan struct{})}
	per := maxRequests / workers
	for range workers {
		l.wg.Go(func() {
			for range per {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+s.front.Addr+path, nil)
				req.Host = host
				resp, err := frontClient.Do(req)
				code, body := 0, ""
				if err == nil {
					b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
					resp.Body.Close()
					code, body = resp.StatusCode, string(b)
				}
				l.mu.Lock()
				if err != nil || code != 200 {
					l.fail++
					if len(l.failures) < 5 {
						l.failures = append(l.failures, fmt.Sprintf("%d %v %s", code, err, strings.TrimSpace(body)))
					}
				} else {
					l.ok++
				}
				l.mu.Unlock()
				time.Sleep(pause)
			}
		})
	}
	return l
}

func (l *loadLoop) finish() (ok, fail int, failures []string) {
	close(l.stop)
	l.wg.Wait()
	return l.ok, l.fail, l.failures
}
