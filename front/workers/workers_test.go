package workers

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMergeExpositions(t *testing.T) {
	worker0 := `# HELP req_total Requests.
# TYPE req_total counter
req_total{route="a"} 3
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{route="a",le="+Inf"} 3
lat_seconds_sum{route="a"} 0.5
lat_seconds_count{route="a"} 3
# HELP open Open tunnels.
# TYPE open gauge
open 1
req_total{route="b"} 4
`
	worker2 := `# HELP req_total Requests.
# TYPE req_total counter
req_total{route="a"} 7
# TYPE empty gauge
empty{} 2
`
	for _, tc := range []struct {
		name  string
		parts [][]byte
		want  string
	}{
		{"no worker answered", [][]byte{nil, nil}, ""},
		{"each family once, every sample labelled by its worker, a missing worker left out",
			[][]byte{[]byte(worker0), nil, []byte(worker2)}, `# HELP req_total Requests.
# TYPE req_total counter
req_total{worker="0",route="a"} 3
req_total{worker="0",route="b"} 4
req_total{worker="2",route="a"} 7
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{worker="0",route="a",le="+Inf"} 3
lat_seconds_sum{worker="0",route="a"} 0.5
lat_seconds_count{worker="0",route="a"} 3
# HELP open Open tunnels.
# TYPE open gauge
open{worker="0"} 1
# TYPE empty gauge
empty{worker="2"} 2
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			mergeExpositions(&buf, tc.parts)
			require.Equal(t, tc.want, buf.String())
		})
	}
}

func TestNextBackoff(t *testing.T) {
	for _, tc := range []struct {
		prev, ran, want time.Duration
	}{
		{0, time.Minute, 0},                        // a worker that ran a while comes back at once
		{maxBackoff, stableRun, 0},                 // whatever came before
		{0, 10 * time.Millisecond, minBackoff},     // one that died at once waits
		{minBackoff, time.Second, 2 * minBackoff},  // and longer each time
		{8 * time.Second, time.Second, maxBackoff}, // up to the cap
		{maxBackoff, time.Millisecond, maxBackoff}, // and no further
		{2 * time.Second, 9 * time.Second, 4 * time.Second},
	} {
		require.Equal(t, tc.want, nextBackoff(tc.prev, tc.ran), "prev %v, ran %v", tc.prev, tc.ran)
	}
}

// TestTicketKeys: workers given one secret derive the same keys; a key
// that encrypts today still decrypts for six more periods; another
// secret gives other keys.
func TestTicketKeys(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, ticketSecretSize)
	now := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	today := ticketKeys(secret, now)
	require.Len(t, today, ticketKeysKept)
	require.Equal(t, today, ticketKeys(bytes.Clone(secret), now.Add(time.Hour)), "same period, same keys")
	tomorrow := ticketKeys(secret, now.Add(ticketKeyPeriod))
	require.NotEqual(t, today[0], tomorrow[0], "a new key every period")
	require.Equal(t, today[:ticketKeysKept-1], tomorrow[1:], "the old ones kept for decryption")
	other := ticketKeys(bytes.Repeat([]byte{8}, ticketSecretSize), now)
	require.NotEqual(t, today[0], other[0])
	seen := map[[32]byte]bool{}
	for _, k := range today {
		require.False(t, seen[k], "distinct keys")
		seen[k] = true
	}
}

// TestOpenSocketsShareOnePort: every worker's socket of a listener has the
// same address, ":0" included, and each accepts connections.
func TestOpenSocketsShareOnePort(t *testing.T) {
	s, err := openSockets(Listener{Addr: "127.0.0.1:0"}, 3)
	require.NoError(t, err)
	defer s.close()
	require.Len(t, s.files, 3)
	for _, f := range s.files {
		ln, err := net.FileListener(f)
		require.NoError(t, err)
		require.Equal(t, s.addr.String(), ln.Addr().String())
		_ = ln.Close()
	}
	c, err := net.Dial("tcp", s.addr.String())
	require.NoError(t, err)
	_ = c.Close()

	// The address is taken by sockets without SO_REUSEPORT: a clear error.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	_, err = openSockets(Listener{Addr: taken.Addr().String()}, 2)
	require.ErrorContains(t, err, "listen "+taken.Addr().String())
}

func TestInheritOutsideAWorker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		isWorker bool
		err      string
	}{
		{"not a worker", nil, false, ""},
		{"bad index", map[string]string{envWorker: "x"}, true, `POTLUCK_FRONT_WORKER="x": not a worker index`},
		{"negative index", map[string]string{envWorker: "-1"}, true, "not a worker index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, isWorker, err := Inherit(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			require.Equal(t, tc.isWorker, isWorker)
			require.Nil(t, in)
			if tc.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}

func TestSecretPipeHoldsTheSecret(t *testing.T) {
	secret := bytes.Repeat([]byte{9}, ticketSecretSize)
	r, err := secretPipe(secret)
	require.NoError(t, err)
	defer r.Close()
	got := make([]byte, 64)
	n, err := r.Read(got)
	require.NoError(t, err)
	require.Equal(t, secret, got[:n])
	_, err = r.Read(got)
	require.Error(t, err, "the write end is closed: EOF after the secret")
}

// TestMasterRestartsAWorkerThatExitsWithBackoff: a worker that cannot run
// is started again, waiting longer each time, its exit on record; the
// master stops at once when told.
func TestMasterRestartsAWorkerThatExitsWithBackoff(t *testing.T) {
	m, err := Start(Config{
		Workers: 1,
		Command: func() *exec.Cmd { return exec.Command("sh", "-c", "exit 3") },
		Logger:  slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	time.Sleep(time.Second)
	w := m.workers[0]
	w.mu.Lock()
	restarts, lastExit := w.restarts, w.lastExit
	w.mu.Unlock()
	require.Equal(t, "exit status 3", lastExit)
	// 100, 200 and 400 ms of backoff fit in the second; 800 more do not.
	require.GreaterOrEqual(t, restarts, 2)
	require.LessOrEqual(t, restarts, 4, "the waits grow")
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	_, err = os.Stat(m.dir)
	require.ErrorIs(t, err, os.ErrNotExist, "the admin socket directory is removed")
}

// helperEnv makes the test binary a worker that inherits its sockets and
// then idles without a handler of its own, as a Front that has not reached
// its config yet.
const helperEnv = "POTLUCK_WORKERS_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if _, ok, err := Inherit(os.LookupEnv); err != nil || !ok {
			os.Exit(2)
		}
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSIGHUPDoesNotKillAStartingWorker: the master passes SIGHUP on once a
// worker is ready (its admin socket exists), and from then the worker
// survives it even before it installs its own handler. Go's default for
// SIGHUP is to exit: without Inherit's guard the worker is restarted.
func TestSIGHUPDoesNotKillAStartingWorker(t *testing.T) {
	m, err := Start(Config{
		Workers:   1,
		Listeners: []Listener{{Addr: "127.0.0.1:0"}},
		Command: func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), helperEnv+"=1")
			return cmd
		},
		ShutdownTimeout: time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() {
		cancel()
		<-done
	}()
	require.Eventually(t, func() bool { return m.workerReady(0) }, 10*time.Second, 10*time.Millisecond)
	m.reload()
	time.Sleep(300 * time.Millisecond)
	w := m.workers[0]
	w.mu.Lock()
	defer w.mu.Unlock()
	require.Zero(t, w.restarts, "the worker died of SIGHUP: %s", w.lastExit)
	require.NotNil(t, w.proc)
}
