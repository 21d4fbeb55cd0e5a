package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// serveBlob serves blob at path on c, stopping after cut bytes and then
// holding the connection silent when cut is below its length (a node
// stalled mid-stream). It counts the requests in hits.
func serveBlob(c *meshCore, path string, blob []byte, cut int, hits *atomic.Int32) {
	c.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob[:min(cut, len(blob))])
		if cut >= len(blob) {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-c.closed:
		}
	})
}

// TestDownloadMovesOnFromAStalledNode: a core node that stops sending in
// the middle of a blob (over the tunnel: no reset, no FIN) is given up
// after DownloadStall and the blob is read again, from its start, from the
// next node. Before, the download waited on the silent node for as long as
// its caller's context allowed. An error of the consumer's own ends the
// download without asking another node.
func TestDownloadMovesOnFromAStalledNode(t *testing.T) {
	const path = "/v1/agent/blobs/sha256:abc"
	blob := bytes.Repeat([]byte("potluck "), 64<<10/8)
	tests := []struct {
		name        string
		consumerErr error
		wantErr     string
		wantHits2   int32
	}{
		{name: "stalled node, then a whole one", wantHits2: 1},
		{name: "consumer refuses", consumerErr: errors.New("not enough free disk"), wantErr: "not enough free disk", wantHits2: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core1 := newMeshCore(t, "core1", netip.MustParseAddr("100.64.0.1"), 1)
			core2 := newMeshCore(t, "core2", netip.MustParseAddr("100.64.0.2"), 1)
			var hits1, hits2 atomic.Int32
			cut := len(blob) / 4
			if tt.consumerErr != nil {
				cut = len(blob)
			}
			serveBlob(core1, path, blob, cut, &hits1)
			serveBlob(core2, path, blob, len(blob), &hits2)
			a := startMeshAgent(t, Config{DownloadStall: 300 * time.Millisecond}, core1, core2)
			waitForTunnels(t, a, core1, core2)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []byte
			err := a.Download(ctx, path, func(r io.Reader) error {
				data, err := io.ReadAll(r)
				if err != nil {
					return err
				}
				if tt.consumerErr != nil {
					return tt.consumerErr
				}
				got = data
				return nil
			})
			require.Equal(t, int32(1), hits1.Load(), "core1 asked first")
			require.Equal(t, tt.wantHits2, hits2.Load())
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, blob, got, "the blob is read again from its start")
		})
	}
}

// TestDownloadNamesTheStall: when every node stalls, the error says so.
func TestDownloadNamesTheStall(t *testing.T) {
	const path = "/v1/agent/blobs/sha256:def"
	core1 := newMeshCore(t, "core1", netip.MustParseAddr("100.64.0.1"), 1)
	var hits atomic.Int32
	serveBlob(core1, path, make([]byte, 1<<16), 10, &hits)
	a := startMeshAgent(t, Config{DownloadStall: 300 * time.Millisecond}, core1)
	waitForTunnels(t, a, core1)
	err := a.Download(context.Background(), path, func(r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	require.ErrorIs(t, err, errStalled)
	require.ErrorContains(t, err, "no data for 300ms")
}

// waitForTunnels waits until a reaches each core's agent API, so that a
// download asks them in order instead of skipping one whose tunnel is
// still coming up.
func waitForTunnels(t *testing.T, a *Agent, cores ...*meshCore) {
	t.Helper()
	for _, c := range cores {
		require.Eventually(t, func() bool {
			resp, err := a.client.Get(c.peer.AgentURL + "/healthz-of-test")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return true
		}, 10*time.Second, 50*time.Millisecond, "the tunnel to %s never came up", c.peer.ID)
	}
}
