// Package apiclient is a small typed client for the Potluck core's public API
// (docs/api.md). Every call takes a context; errors from the API come back as
// *Error with the HTTP status and the API's {"error": ...} message; writes
// carry an X-Request-Id that is kept across the client's own retries, so a
// retried write is applied once; image uploads are streamed with a progress
// callback.
package apiclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"potluck/internal/jsonhttp"
)

// Header names used by the API.
const (
	HeaderRequestID = "X-Request-Id"
	HeaderIndex     = "X-Potluck-Index"
	// HeaderNextCursor is the cursor of a list's next page; absent on the last.
	HeaderNextCursor = "X-Potluck-Next-Cursor"
	// HeaderUISession carries a web UI session id to its lookup and logout.
	HeaderUISession = "X-Potluck-Session"
)

// maxPages bounds how many pages a list call follows (1000 items each at
// most), so a server that kept answering a next cursor cannot loop a client.
const maxPages = 10000

// maxResponseBytes bounds what the client reads from one answer (a list
// page is at most 1000 items, far below this).
const maxResponseBytes = 64 << 20

// Error is an answer of the API with a status of 400 or more: the one error
// type of Potluck's JSON-over-HTTP calls.
type Error = jsonhttp.Error

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int { return jsonhttp.StatusOf(err) }

// Client calls one core node. Any node answers any call.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	// Retries of a call after 502/503 or a lost connection (a write sends
	// its request id again). Streamed uploads are not retried.
	retries    int
	retryPause time.Duration
	// staleReads answers every read from the node's own copy (?stale).
	staleReads bool
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: http.DefaultClient's
// transport with no overall timeout, since uploads and blocking queries are
// long; use contexts for deadlines).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// LoadCAFile reads a PEM bundle of CA certificates (the --ca of the CLI,
// --core-ca of the agents).
func LoadCAFile(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// WithRetries sets how often a call that failed on a leader change (502,
// 503) or a lost connection is retried, a write with the same request id
// (default 3, pause 500ms).
func WithRetries(n int, pause time.Duration) Option {
	return func(c *Client) { c.retries, c.retryPause = n, pause }
}

// WithStaleReads makes every read ask for the node's own copy of the state
// (?stale): it answers at once without a leader, possibly behind.
func WithStaleReads() Option { return func(c *Client) { c.staleReads = true } }

// New returns a client for the core API at addr (e.g. http://127.0.0.1:8400)
// using the bearer token.
func New(addr, token string, opts ...Option) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("apiclient: bad address %q: %w", addr, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("apiclient: bad address %q: want http(s)://host:port", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &Client{base: u, token: token, http: &http.Client{}, retries: 3, retryPause: 500 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// NewRequestID returns a fresh random request id.
func NewRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Meta is what an answer says besides its body.
type Meta struct {
	Index     uint64 // X-Potluck-Index: the state index the answer reflects
	RequestID string // X-Request-Id echoed on writes
	// Next is the cursor of the next page of a list when more remain (a list
	// call with Query.Limit stops there); "" when the list is complete.
	Next string
}

// Query holds the blocking-query parameters of a read.
type Query struct {
	Index uint64        // wait until the state index is above this
	Wait  time.Duration // at most this long (server default 5m)
	Stale bool          // answer from the node's own copy
	// Limit: a list returns at most this many items and, when more remain,
	// Meta.Next to continue from (Query.Cursor). 0 = every item: the call
	// follows the API's pages (docs/api.md, Lists) until the last.
	Limit int
	// Cursor continues a list after the page that gave it as Meta.Next.
	Cursor string
}

func (q *Query) values() url.Values {
	v := url.Values{}
	if q == nil {
		return v
	}
	if q.Index > 0 {
		v.Set("index", strconv.FormatUint(q.Index, 10))
		if q.Wait > 0 {
			v.Set("wait", q.Wait.String())
		}
	}
	if q.Stale {
		v.Set("stale", "")
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	return v
}

// list reads a paged list: pages of at most q.Limit items (the API's
// maximum without one), following the next cursor until q.Limit items or
// the last page. A blocking query (q.Index) applies to the first page; the
// Meta returned is the first page's, with the Next of the last page read.
func list[T any](ctx context.Context, c *Client, path string, q *Query) ([]T, Meta, error) {
	v := q.values()
	want := 0
	if q != nil {
		want = q.Limit
	}
	var out []T
	var first Meta
	for page := 0; page < maxPages; page++ {
		size := maxPageSize
		if want > 0 {
			size = min(size, want-len(out))
		}
		v.Set("limit", strconv.Itoa(size))
		var items []T
		m, err := c.do(ctx, http.MethodGet, path, v, nil, &items)
		if err != nil {
			return out, m, err
		}
		if page == 0 {
			first = m
			v.Del("index") // later pages must not wait
			v.Del("wait")
		}
		out = append(out, items...)
		first.Next = m.Next
		if m.Next == "" || (want > 0 && len(out) >= want) {
			return out, first, nil
		}
		v.Set("cursor", m.Next)
	}
	return out, first, fmt.Errorf("GET %s: more than %d pages", path, maxPages)
}

// maxPageSize is the API's largest page (docs/api.md, Lists).
const maxPageSize = 1000

// do sends one request and decodes a JSON answer into out (when non-nil).
// body is re-sent on retries, so it must be a []byte (JSON) or nil.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) (Meta, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return Meta{}, fmt.Errorf("apiclient: encode request: %w", err)
		}
	}
	reqID := ""
	if method != http.MethodGet {
		reqID = NewRequestID()
	}
	attempts := 1 + c.retries
	var lastErr error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return Meta{}, errors.Join(lastErr, ctx.Err())
			case <-time.After(c.retryPause):
			}
		}
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		meta, err := c.send(ctx, method, path, query, rd, "application/json", -1, reqID, out)
		if err == nil {
			return meta, nil
		}
		lastErr = err
		if !retryable(ctx, err) {
			return meta, err
		}
	}
	return Meta{}, lastErr
}

// retryable: leadership changes (503), failed forwarding (502) and lost
// connections are worth a retry with the same request id.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch StatusOf(err) {
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return true
	case 0:
		return true // transport error
	}
	return false
}

func (c *Client) send(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, size int64, reqID string, out any) (Meta, error) {
	resp, meta, err := c.open(ctx, method, path, query, body, contentType, size, reqID)
	if err != nil {
		return meta, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return meta, fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return meta, fmt.Errorf("%s %s: decoding answer: %w", method, path, err)
		}
	}
	return meta, nil
}

// open sends one request and returns the answer for the caller to read and
// close; an answer of status 400 or more is read here and returned as an
// *Error.
func (c *Client) open(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string, size int64, reqID string) (*http.Response, Meta, error) {
	// path has its names escaped (url.PathEscape): it goes on the wire as
	// it is, and Path gets its unescaped form. (Appending it to Path alone
	// escaped it twice: the core saw "Bad%20Name" for "Bad Name".)
	u := *c.base
	u.RawPath = strings.TrimSuffix(u.EscapedPath(), "/") + path
	unescaped, err := url.PathUnescape(u.RawPath)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("apiclient: path %q: %w", path, err)
	}
	u.Path = unescaped
	if c.staleReads && method == http.MethodGet && !query.Has("stale") {
		query = maps.Clone(query)
		if query == nil {
			query = url.Values{}
		}
		query.Set("stale", "")
	}
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, Meta{}, fmt.Errorf("apiclient: %w", err)
	}
	if size >= 0 && body != nil {
		req.ContentLength = size
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if reqID != "" {
		req.Header.Set(HeaderRequestID, reqID)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// The *url.Error repeats method and URL; keep just the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, Meta{}, fmt.Errorf("%s %s at %s: %w", method, path, c.base.Redacted(), err)
	}
	meta := Meta{RequestID: resp.Header.Get(HeaderRequestID), Next: resp.Header.Get(HeaderNextCursor)}
	meta.Index, _ = strconv.ParseUint(resp.Header.Get(HeaderIndex), 10, 64)
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		if err != nil {
			return nil, meta, fmt.Errorf("%s %s: reading answer: %w", method, path, err)
		}
		return nil, meta, jsonhttp.ErrorFrom(resp.StatusCode, data)
	}
	return resp, meta, nil
}

// ---- status ----

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	_, err := c.do(ctx, http.MethodGet, "/v1/status", nil, nil, &s)
	return &s, err
}

// ---- tokens ----

// Token scopes (TokenRequest.Scope).
const (
	ScopeJoin     = "join"
	ScopeAppOwner = "app-owner"
	ScopeReadOnly = "read-only"
)

// TokenRequest asks for a join or scoped token.
type TokenRequest struct {
	Description string
	TTL         time.Duration // 0: no expiry
	Scope       string        // "" or ScopeJoin, ScopeAppOwner, ScopeReadOnly
	// Apps and Installations an app-owner token may read and change.
	Apps, Installations []string
}

// CreateToken creates a join token; ttl 0 means no expiry. The secret is in
// the answer's Token field only.
func (c *Client) CreateToken(ctx context.Context, description string, ttl time.Duration) (*Token, error) {
	return c.CreateScopedToken(ctx, TokenRequest{Description: description, TTL: ttl})
}

// CreateScopedToken creates a join, app-owner or read-only token. The
// secret is in the answer's Token field only.
func (c *Client) CreateScopedToken(ctx context.Context, r TokenRequest) (*Token, error) {
	req := map[string]any{"description": r.Description}
	if r.TTL > 0 {
		req["ttl"] = r.TTL.String()
	}
	if r.Scope != "" {
		req["scope"] = r.Scope
	}
	if len(r.Apps) > 0 {
		req["apps"] = r.Apps
	}
	if len(r.Installations) > 0 {
		req["installations"] = r.Installations
	}
	var t Token
	_, err := c.do(ctx, http.MethodPost, "/v1/tokens", nil, req, &t)
	return &t, err
}

// Rotation answers an operator-token rotation.
type Rotation struct {
	Token         string     `json:"token,omitempty"` // the new operator token, shown once
	PreviousUntil *time.Time `json:"previous_valid_until,omitempty"`
}

// RotateOperatorToken replaces the operator token; the old one keeps
// working for grace (negative: the server's default, an hour).
func (c *Client) RotateOperatorToken(ctx context.Context, grace time.Duration) (*Rotation, error) {
	req := map[string]string{}
	if grace >= 0 {
		req["grace"] = grace.String()
	}
	var r Rotation
	_, err := c.do(ctx, http.MethodPost, "/v1/tokens/operator/rotate", nil, req, &r)
	return &r, err
}

// Tokens lists join tokens (without secrets); q may be nil (all of them).
func (c *Client) Tokens(ctx context.Context, q *Query) ([]Token, Meta, error) {
	return list[Token](ctx, c, "/v1/tokens", q)
}

// RevokeToken revokes a join token by id.
func (c *Client) RevokeToken(ctx context.Context, id string) (*Token, error) {
	var t Token
	_, err := c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(id), nil, nil, &t)
	return &t, err
}

// ---- hosts ----

// Hosts lists hosts; q may be nil or a blocking query.
func (c *Client) Hosts(ctx context.Context, q *Query) ([]Host, Meta, error) {
	return list[Host](ctx, c, "/v1/hosts", q)
}

// Host shows one host by id or name.
func (c *Client) Host(ctx context.Context, idOrName string) (*Host, error) {
	var h Host
	_, err := c.do(ctx, http.MethodGet, "/v1/hosts/"+url.PathEscape(idOrName), nil, nil, &h)
	return &h, err
}

// RegisterHost registers a Front or Back (join token or operator token).
func (c *Client) RegisterHost(ctx context.Context, req RegisterHostRequest) (*Registration, error) {
	var r Registration
	_, err := c.do(ctx, http.MethodPost, "/v1/hosts", nil, req, &r)
	return &r, err
}

// DecommissionHost drains and removes a host.
func (c *Client) DecommissionHost(ctx context.Context, idOrName string) (*Host, error) {
	var h Host
	_, err := c.do(ctx, http.MethodPost, "/v1/hosts/"+url.PathEscape(idOrName)+"/decommission", nil, nil, &h)
	return &h, err
}

// HostPatch changes what the operator sets on a host (PATCH
// /v1/hosts/{id}, a JSON merge patch): a nil Lender is kept, a label set to
// nil is removed.
type HostPatch struct {
	Lender *string            `json:"lender,omitempty"`
	Labels map[string]*string `json:"labels,omitempty"`
}

// PatchHost sets a host's lender and labels.
func (c *Client) PatchHost(ctx context.Context, idOrName string, patch HostPatch) (*Host, error) {
	var h Host
	_, err := c.do(ctx, http.MethodPatch, "/v1/hosts/"+url.PathEscape(idOrName), nil, patch, &h)
	return &h, err
}

// ---- apps ----

// Progress is called while an upload is sent with the bytes sent so far
// and the total (-1 when unknown).
type Progress func(sent, total int64)

// UploadAppFile uploads the `docker save` tarball at path as UploadApp
// does; a file can rewind, so a lost connection is retried.
func (c *Client) UploadAppFile(ctx context.Context, name string, containerPort int, path string, progress Progress) (*App, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory; give the tarball of `docker save IMAGE -o FILE`", path)
	}
	return c.UploadApp(ctx, name, containerPort, f, fi.Size(), progress)
}

// UploadApp streams a `docker save` tarball as app name. size is the body
// length (-1 if unknown); containerPort 0 leaves the port unset. A body
// that is an io.Seeker (a file) is retried like other writes, rewound, with
// one request id; a plain stream is sent once.
func (c *Client) UploadApp(ctx context.Context, name string, containerPort int, body io.Reader, size int64, progress Progress) (*App, error) {
	q := url.Values{}
	if containerPort != 0 {
		q.Set("container_port", strconv.Itoa(containerPort))
	}
	// A body that can rewind (a file) is sent again after a leadership
	// change or a lost connection, with the same request id, so the core
	// stores it once; anything else is sent once.
	seeker, canRetry := body.(io.Seeker)
	attempts := 1
	if canRetry {
		attempts += c.retries
	}
	reqID := NewRequestID()
	var a App
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			if _, serr := seeker.Seek(0, io.SeekStart); serr != nil {
				return nil, errors.Join(err, serr)
			}
			select {
			case <-ctx.Done():
				return nil, errors.Join(err, ctx.Err())
			case <-time.After(c.retryPause):
			}
		}
		// Only Read: the transport closes a body that can be closed, and
		// the caller's file must survive for a retry.
		rd := io.Reader(struct{ io.Reader }{body})
		if progress != nil {
			rd = &progressReader{r: body, total: size, fn: progress}
		}
		if _, err = c.send(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(name)+"/tarball", q, rd, "application/x-tar", size, reqID, &a); err == nil || !retryable(ctx, err) {
			break
		}
	}
	return &a, err
}

type progressReader struct {
	r     io.Reader
	sent  int64
	total int64
	fn    Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.sent += int64(n)
	p.fn(p.sent, p.total)
	return n, err
}

// CreateImageApp registers an app that names an image in a registry.
func (c *Client) CreateImageApp(ctx context.Context, name, image string, containerPort int) (*App, error) {
	var a App
	_, err := c.do(ctx, http.MethodPost, "/v1/apps", nil, map[string]any{"name": name, "image": image, "container_port": containerPort}, &a)
	return &a, err
}

// Apps lists apps.
func (c *Client) Apps(ctx context.Context, q *Query) ([]App, Meta, error) {
	return list[App](ctx, c, "/v1/apps", q)
}

// App shows one app.
func (c *Client) App(ctx context.Context, name string) (*App, error) {
	var a App
	_, err := c.do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(name), nil, nil, &a)
	return &a, err
}

// DeleteApp deletes an app no installation uses.
func (c *Client) DeleteApp(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/apps/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// ---- installations ----

// CreateInstallation places an app on Backs and Fronts.
func (c *Client) CreateInstallation(ctx context.Context, req CreateInstallationRequest) (*Installation, error) {
	var in Installation
	_, err := c.do(ctx, http.MethodPost, "/v1/installations", nil, req, &in)
	return &in, err
}

// Installations lists installations with their instances.
func (c *Client) Installations(ctx context.Context, q *Query) ([]Installation, Meta, error) {
	return list[Installation](ctx, c, "/v1/installations", q)
}

// Installation shows one installation; q may be nil or a blocking query
// (to watch it change).
func (c *Client) Installation(ctx context.Context, name string, q *Query) (*Installation, Meta, error) {
	var in Installation
	m, err := c.do(ctx, http.MethodGet, "/v1/installations/"+url.PathEscape(name), q.values(), nil, &in)
	return &in, m, err
}

// ScaleInstallation changes the number of Fronts and/or Backs (nil = keep).
func (c *Client) ScaleInstallation(ctx context.Context, name string, fronts, backs *int) (*Installation, error) {
	req := map[string]int{}
	if fronts != nil {
		req["fronts"] = *fronts
	}
	if backs != nil {
		req["backs"] = *backs
	}
	var in Installation
	_, err := c.do(ctx, http.MethodPost, "/v1/installations/"+url.PathEscape(name)+"/scale", nil, req, &in)
	return &in, err
}

// Deploy creates a new release of an installation and starts rolling it
// out; the answer comes at once (202), the rollout goes on in the core.
func (c *Client) Deploy(ctx context.Context, name string, req DeployRequest) (*Installation, error) {
	var in Installation
	_, err := c.do(ctx, http.MethodPost, "/v1/installations/"+url.PathEscape(name)+"/releases", nil, req, &in)
	return &in, err
}

// Rollback creates a release with the settings of release version (0: the
// one live before the current one) and rolls it out.
func (c *Client) Rollback(ctx context.Context, name string, version int) (*Installation, error) {
	var in Installation
	_, err := c.do(ctx, http.MethodPost, "/v1/installations/"+url.PathEscape(name)+"/rollback", nil, map[string]int{"version": version}, &in)
	return &in, err
}

// Releases lists an installation's releases, newest first.
func (c *Client) Releases(ctx context.Context, name string) ([]ListedRelease, error) {
	var rs []ListedRelease
	_, err := c.do(ctx, http.MethodGet, "/v1/installations/"+url.PathEscape(name)+"/releases", nil, nil, &rs)
	return rs, err
}

// LogQuery selects log lines: Follow streams new lines as they come;
// Instance picks one instance (default all); Since is a duration such as
// "10m" or an RFC 3339 time; Tail is the last lines per instance (0: the
// server's default of 100, or all since Since).
type LogQuery struct {
	Follow   bool
	Instance string
	Since    string
	Tail     int
}

// Logs streams an installation's log lines ("INSTANCE TIMESTAMP TEXT") to
// w until they end (or, following, until ctx ends).
func (c *Client) Logs(ctx context.Context, name string, q LogQuery, w io.Writer) error {
	v := url.Values{}
	if q.Follow {
		v.Set("follow", "true")
	}
	if q.Instance != "" {
		v.Set("instance", q.Instance)
	}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Tail > 0 {
		v.Set("tail", strconv.Itoa(q.Tail))
	}
	resp, _, err := c.open(ctx, http.MethodGet, "/v1/installations/"+url.PathEscape(name)+"/logs", v, nil, "", -1, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if ctx.Err() != nil {
		return nil // the caller stopped following
	}
	return err
}

// DeleteInstallation removes an installation and its instances.
func (c *Client) DeleteInstallation(ctx context.Context, name string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/installations/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// ---- containers ----

// Containers lists every instance with host, port and state.
func (c *Client) Containers(ctx context.Context, q *Query) ([]Instance, Meta, error) {
	return list[Instance](ctx, c, "/v1/containers", q)
}

// ---- cluster membership ----

// Members lists the core nodes of the raft group, as the node asked knows
// them (answered without a leader too).
func (c *Client) Members(ctx context.Context) ([]Node, error) {
	var ns []Node
	_, err := c.do(ctx, http.MethodGet, "/v1/cluster/members", nil, nil, &ns)
	return ns, err
}

// PlacementPolicy is the cluster's placement policy (spread or pack).
func (c *Client) PlacementPolicy(ctx context.Context) (string, error) {
	var v struct{ Policy string }
	_, err := c.do(ctx, http.MethodGet, "/v1/cluster/placement", nil, nil, &v)
	return v.Policy, err
}

// SetPlacementPolicy sets the cluster's placement policy.
func (c *Client) SetPlacementPolicy(ctx context.Context, policy string) (string, error) {
	var v struct{ Policy string }
	_, err := c.do(ctx, http.MethodPut, "/v1/cluster/placement", nil, map[string]string{"policy": policy}, &v)
	return v.Policy, err
}

// AddMember adds a core node as a voter: id is its --id, raftAddr the raft
// address it advertises. The node must be running with an empty data
// directory and --join (see docs/operations.md, Membership).
func (c *Client) AddMember(ctx context.Context, id, raftAddr string) (*Status, error) {
	var s Status
	_, err := c.do(ctx, http.MethodPost, "/v1/cluster/voters", nil, map[string]string{"id": id, "raft_address": raftAddr}, &s)
	return &s, err
}

// RemoveMember removes a core node from the raft group; the removed node
// stops serving (410) and its potluck-core exits.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/cluster/voters/"+url.PathEscape(id), nil, nil, nil)
	return err
}
