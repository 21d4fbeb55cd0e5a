package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"potluck/agentproto"
)

// A host declaring more than it has is refused before it registers, with
// the flag to lower named.
func TestStartRefusesToDeclareMoreThanTheHostHas(t *testing.T) {
	m, err := MeasureLocal(t.TempDir())(context.Background(), "")
	require.NoError(t, err)
	base := Config{CoreURLs: []string{"http://127.0.0.1:1"}, Name: "back1", Role: "back", CPUs: 1, MemoryMB: 64, DiskMB: 1, RegisterTimeout: time.Second}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"cpus", func(c *Config) { c.CPUs = 1024 }, "--cpus 1024 but the host has"},
		{"memory", func(c *Config) { c.MemoryMB = m.MemoryMB + 1 }, "--memory"},
		{"disk", func(c *Config) { c.DiskMB = 16 << 20 }, "--disk 16777216 MiB but"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.DataDir = t.TempDir()
			tc.edit(&cfg)
			_, err := Start(context.Background(), cfg)
			require.ErrorIs(t, err, ErrOverDeclared)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// The registration carries the measurement next to the declaration.
func TestRegistrationReportsDeclaredAndMeasured(t *testing.T) {
	reg := registration(t)
	got := make(chan agentproto.RegisterRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req agentproto.RegisterRequest
		json.NewDecoder(r.Body).Decode(&req)
		select {
		case got <- req:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(reg)
	}))
	defer srv.Close()
	measured := agentproto.Capacity{CPUs: 8, MemoryMB: 16384, DiskMB: 100000}
	var askedFor string
	a, err := Start(context.Background(), Config{CoreURLs: []string{srv.URL}, Name: "back1", Role: "back",
		CPUs: 2, MemoryMB: 4096, DiskMB: 2048, DataDir: t.TempDir(),
		Measure: func(_ context.Context, hostID string) (agentproto.Capacity, error) {
			askedFor = hostID
			return measured, nil
		}})
	require.NoError(t, err)
	defer a.Close()
	req := <-got
	require.Equal(t, 2.0, req.CPUs)
	require.Equal(t, int64(4096), req.MemoryMB)
	require.Equal(t, int64(2048), req.DiskMB)
	require.Equal(t, &measured, req.Measured)
	require.Equal(t, measured, a.Measured())
	require.Empty(t, askedFor, "a new host has no id yet")
}

func TestMeasureLocal(t *testing.T) {
	m, err := MeasureLocal(t.TempDir())(context.Background(), "")
	require.NoError(t, err)
	require.Equal(t, float64(runtime.NumCPU()), m.CPUs)
	require.Positive(t, m.MemoryMB)
	require.Positive(t, m.DiskMB)

	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          int64
		ok            bool
	}{
		{"kB", "MemFree: 1 kB\nMemTotal:       24684440 kB\n", 24684440 << 10, true},
		{"missing", "MemFree: 1 kB\n", 0, false},
		{"garbage", "MemTotal: lots\n", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			require.NoError(t, os.WriteFile(p, []byte(tc.content), 0o600))
			n, err := memTotal(p)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, n)
		})
	}
}
