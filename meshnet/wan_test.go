package meshnet

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.zx2c4.com/wireguard/conn"
)

// recordingBind is a conn.Bind that records what it is asked to send.
type recordingBind struct {
	mu     sync.Mutex
	sent   [][]byte
	at     []time.Time
	closed chan struct{}
}

func (r *recordingBind) Open(uint16) ([]conn.ReceiveFunc, uint16, error) {
	r.closed = make(chan struct{})
	closed := r.closed
	recv := func([][]byte, []int, []conn.Endpoint) (int, error) { <-closed; return 0, net.ErrClosed }
	return []conn.ReceiveFunc{recv}, 1, nil
}
func (r *recordingBind) Close() error                                { close(r.closed); return nil }
func (r *recordingBind) SetMark(uint32) error                        { return nil }
func (r *recordingBind) ParseEndpoint(string) (conn.Endpoint, error) { return nil, nil }
func (r *recordingBind) BatchSize() int                              { return 1 }
func (r *recordingBind) Send(bufs [][]byte, _ conn.Endpoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range bufs {
		r.sent = append(r.sent, b)
		r.at = append(r.at, time.Now())
	}
	return nil
}

func (r *recordingBind) snapshot() ([][]byte, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.sent...), append([]time.Time(nil), r.at...)
}

func TestWANBindDelaysInOrderWithJitter(t *testing.T) {
	inner := &recordingBind{}
	w, err := NewWANBind(inner, WANConfig{Delay: 20 * time.Millisecond, Jitter: 15 * time.Millisecond, Seed: 7})
	require.NoError(t, err)
	_, _, err = w.Open(0)
	require.NoError(t, err)

	const n = 200
	start := time.Now()
	buf := make([]byte, 1)
	for i := range n {
		buf[0] = byte(i)
		require.NoError(t, w.Send([][]byte{buf}, nil))
	}
	buf[0] = 0xff // the bind copied what it queued
	require.Eventually(t, func() bool { s, _ := inner.snapshot(); return len(s) == n }, 5*time.Second, 10*time.Millisecond)
	sent, at := inner.snapshot()
	for i := range n {
		require.Equal(t, byte(i), sent[i][0], "packet %d out of order", i)
		require.GreaterOrEqual(t, at[i].Sub(start), 20*time.Millisecond, "packet %d left early", i)
	}
	s, d := w.Stats()
	require.Equal(t, uint64(n), s)
	require.Zero(t, d)

	require.NoError(t, w.Close())
	require.ErrorIs(t, w.Send([][]byte{buf}, nil), net.ErrClosed)
	_, _, err = w.Open(0)
	require.NoError(t, err, "WireGuard reopens its bind when the port changes")
	require.NoError(t, w.Close())
}

func TestWANBindLossIsSeededAndBounded(t *testing.T) {
	run := func() uint64 {
		inner := &recordingBind{}
		w, err := NewWANBind(inner, WANConfig{Loss: 0.1, Seed: 42})
		require.NoError(t, err)
		_, _, err = w.Open(0)
		require.NoError(t, err)
		defer w.Close()
		for range 5000 {
			require.NoError(t, w.Send([][]byte{{1}}, nil))
		}
		_, dropped := w.Stats()
		return dropped
	}
	first := run()
	require.Equal(t, first, run(), "same seed, same losses")
	require.InDelta(t, 500, float64(first), 100)
}

func TestWANConfigErrors(t *testing.T) {
	for _, cfg := range []WANConfig{{Delay: -1}, {Jitter: -1}, {Loss: -0.1}, {Loss: 1.5}, {QueueLen: -1}} {
		_, err := NewWANBind(&recordingBind{}, cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

// Through real nodes: a 20 ms round trip shows, and a lossy path still
// delivers every byte intact (TCP inside the tunnel retransmits).
func TestWANThroughTunnel(t *testing.T) {
	half := &WANConfig{Delay: 10 * time.Millisecond, Loss: 0.01, Seed: 1}
	a := newNode(t, "100.64.0.1", nodeOpts{wan: half})
	b := newNode(t, "100.64.0.2", nodeOpts{wan: half})
	link(t, a, b)

	payload := make([]byte, 1<<20)
	_, err := rand.Read(payload)
	require.NoError(t, err)
	ln, err := b.Listen(80)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) })}
	go srv.Serve(ln)
	defer srv.Close()

	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: a.DialContext}}
	fetch := func() ([]byte, time.Duration) {
		start := time.Now()
		resp, err := client.Get("http://100.64.0.2/")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return body, time.Since(start)
	}
	body, _ := fetch()
	require.True(t, bytes.Equal(payload, body), "payload corrupted on a lossy path")

	// A warm connection: one request is at least one round trip.
	_, took := fetch()
	require.GreaterOrEqual(t, took, 20*time.Millisecond)
}
