package apiclient_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"potluck/apiclient"
	"potluck/apiclient/apitest"
)

// lossyProxy sits between the client and a real core: for the first write
// it forwards the request (the core applies it) and then answers 503, as
// if the answer had been lost in a leader change. It records the request
// ids it saw.
type lossyProxy struct {
	proxy *httputil.ReverseProxy
	mu    sync.Mutex
	ids   []string
	lost  bool
	// failReads: the first this many reads are answered 503, as a
	// follower answers a read forwarded to a leader that lost office.
	failReads int
	reads     int
}

func (p *lossyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		p.mu.Lock()
		p.reads++
		fail := p.reads <= p.failReads
		p.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error": "leadership changed while the read was forwarded; retry, or add ?stale"}`)
			return
		}
		p.proxy.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.ids = append(p.ids, r.Header.Get(apiclient.HeaderRequestID))
	first := !p.lost
	p.lost = true
	p.mu.Unlock()
	if first {
		rec := &discard{header: http.Header{}}
		p.proxy.ServeHTTP(rec, r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error": "leadership changed during the request; retry with the same X-Request-Id"}`)
		return
	}
	p.proxy.ServeHTTP(w, r)
}

type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// lossyClient is a client whose first write's answer is lost on the way back.
func lossyClient(t *testing.T, core *apitest.Core, opts ...apiclient.Option) (*apiclient.Client, *lossyProxy) {
	target, err := url.Parse(core.URL)
	require.NoError(t, err)
	lp := &lossyProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	srv := &http.Server{Handler: lp, ReadHeaderTimeout: 5 * time.Second}
	ln := listen(t)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := apiclient.New("http://"+ln.Addr().String(), apitest.Token, append([]apiclient.Option{apiclient.WithRetries(3, 10*time.Millisecond)}, opts...)...)
	require.NoError(t, err)
	return c, lp
}

// An upload from a file is sent again after a lost answer, rewound, with the
// same request id, and stored once.
func TestRetriedUploadFromFileIsStoredOnce(t *testing.T) {
	core := apitest.Start(t)
	c, lp := lossyClient(t, core)
	path := filepath.Join(t.TempDir(), "app.tar")
	require.NoError(t, os.WriteFile(path, apitest.DockerSaveTar(t, "hello:1", 4096), 0o600))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	app, err := c.UploadAppFile(ctx, "hello", 8080, path, nil)
	require.NoError(t, err)
	require.Equal(t, fi.Size(), app.Size, "the whole file was sent again")
	lp.mu.Lock()
	ids := append([]string(nil), lp.ids...)
	lp.mu.Unlock()
	// One lost answer, then retries (a 503 while the node settles may add
	// one), all with the same request id.
	require.GreaterOrEqual(t, len(ids), 2)
	for _, id := range ids[1:] {
		require.Equal(t, ids[0], id)
	}
	apps, _, err := core.Client.Apps(ctx, nil)
	require.NoError(t, err)
	require.Len(t, apps, 1)
}

func TestRetriedWriteIsAppliedOnce(t *testing.T) {
	core := apitest.Start(t)
	c, lp := lossyClient(t, core)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := c.CreateToken(ctx, "retried", 0)
	require.NoError(t, err)
	require.Equal(t, "retried", tok.Description)

	lp.mu.Lock()
	ids := append([]string(nil), lp.ids...)
	lp.mu.Unlock()
	require.Len(t, ids, 2, "one lost answer, one retry")
	require.NotEmpty(t, ids[0])
	require.Equal(t, ids[0], ids[1], "the retry must carry the same request id")

	all, _, err := core.Client.Tokens(ctx, nil)
	require.NoError(t, err)
	require.Len(t, all, 1, "the write was applied once")
}

func TestErrorsCarryStatusAndMessage(t *testing.T) {
	core := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wrong, err := apiclient.New(core.URL, "wrong-token")
	require.NoError(t, err)

	tests := []struct {
		name   string
		call   func() error
		status int
		msg    string
	}{
		{"wrong token", func() error { _, _, err := wrong.Hosts(ctx, nil); return err }, 401, "operator token required"},
		{"no such app", func() error { _, err := core.Client.App(ctx, "nope"); return err }, 404, "nope"},
		{"corrupt tarball", func() error {
			_, err := core.Client.UploadApp(ctx, "junk", 0, bytes.NewReader([]byte("junk")), 4, nil)
			return err
		}, 400, "docker save"},
		{"unknown app", func() error {
			_, err := core.Client.CreateInstallation(ctx, apiclient.CreateInstallationRequest{Name: "x", App: "nope", Fronts: 1, Backs: 1, Domain: "x.example.com"})
			return err
		}, 400, "nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			require.Equal(t, tc.status, apiclient.StatusOf(err), err.Error())
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func TestUploadStreamsWithProgress(t *testing.T) {
	core := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	data := apitest.DockerSaveTar(t, "hello:1", 1<<20)
	var calls int
	var last int64
	app, err := core.Client.UploadApp(ctx, "hello", 8080, bytes.NewReader(data), int64(len(data)), func(sent, total int64) {
		calls++
		assert.GreaterOrEqual(t, sent, last)
		assert.Equal(t, int64(len(data)), total)
		last = sent
	})
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), last)
	require.Greater(t, calls, 1)
	require.Equal(t, "hello:1", app.Image)
	require.Equal(t, 8080, app.ContainerPort)

	// Blocking query: a list with the current index waits for a change.
	_, meta, err := core.Client.Apps(ctx, nil)
	require.NoError(t, err)
	require.NotZero(t, meta.Index)
	done := make(chan []apiclient.App, 1)
	go func() {
		as, _, _ := core.Client.Apps(ctx, &apiclient.Query{Index: meta.Index, Wait: 5 * time.Second})
		done <- as
	}()
	select {
	case <-done:
		t.Fatal("blocking query answered before any change")
	case <-time.After(200 * time.Millisecond):
	}
	_, err = core.Client.CreateImageApp(ctx, "nginx", "nginx:1.27", 80)
	require.NoError(t, err)
	select {
	case as := <-done:
		require.Len(t, as, 2)
	case <-time.After(5 * time.Second):
		t.Fatal("blocking query did not wake up")
	}
}

func TestBadAddress(t *testing.T) {
	for _, addr := range []string{"ftp://x", "http://", "http://a b"} {
		_, err := apiclient.New(addr, "t")
		require.Error(t, err, addr)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}

// TestListsFollowPages: 1152 join tokens (the issue saw 1000 of them) come
// back whole from a list, and Limit reads one page with the cursor to
// continue from (issue 11, finding 4).
func TestListsFollowPages(t *testing.T) {
	core := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const total = 1152
	core.CreateTokens(t, total)
	all, meta, err := core.Client.Tokens(ctx, nil)
	require.NoError(t, err)
	require.Len(t, all, total)
	require.Empty(t, meta.Next)
	for i, tok := range all {
		require.Equal(t, fmt.Sprintf("t%05d", i), tok.ID)
	}

	var paged []apiclient.Token
	q := &apiclient.Query{Limit: 500}
	for pages := 1; ; pages++ {
		page, meta, err := core.Client.Tokens(ctx, q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 500)
		paged = append(paged, page...)
		if meta.Next == "" {
			require.Equal(t, 3, pages)
			break
		}
		q.Cursor = meta.Next
	}
	require.Equal(t, all, paged)
}

// TestReadsAreRetriedThroughALeaderChange: a read answered 503 while the
// leadership moves is asked again (the CLI's deploy failed on it in a
// loaded test run: "leadership changed while the read was forwarded");
// with retries off the 503 is the answer.
func TestReadsAreRetriedThroughALeaderChange(t *testing.T) {
	core := apitest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name    string
		opts    []apiclient.Option
		wantErr bool
	}{
		{name: "default retries"},
		{name: "retries off", opts: []apiclient.Option{apiclient.WithRetries(0, 0)}, wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, lp := lossyClient(t, core, tt.opts...)
			lp.failReads = 2
			_, err := c.Status(ctx)
			if tt.wantErr {
				require.Equal(t, http.StatusServiceUnavailable, apiclient.StatusOf(err), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, 3, lp.reads, "two 503s, then the answer")
		})
	}
}
